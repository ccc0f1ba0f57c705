x <- 1:100
out <- ifelse(x %% 15 == 0, "FizzBuzz",
       ifelse(x %% 3 == 0, "Fizz",
       ifelse(x %% 5 == 0, "Buzz", x)))
cat(out, sep = "\n")
