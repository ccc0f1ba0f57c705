args <- commandArgs(trailingOnly = TRUE)
cat("argc: ", length(args), "\n", sep = "")
for (i in seq_along(args)) {
  cat(i, ": ", args[i], "\n", sep = "")
}
