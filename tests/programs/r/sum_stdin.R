# Read numbers from standard input until EOF.
con <- file("stdin")
x <- scan(con, what = integer(), quiet = TRUE)
close(con)
cat("count: ", length(x), "\n", sep = "")
cat("sum: ", sum(x), "\n", sep = "")
