a <- matrix(c(1, 2, 3, 4,
              5, 6, 7, 8,
              -1, 0, 2, -3), nrow = 3, byrow = TRUE)
b <- matrix(c(1, 0,
              0, 1,
              2, -1,
              3, 5), nrow = 4, byrow = TRUE)
print(a %*% b)

# Square matrix: transpose, determinant and inverse check.
m <- matrix(c(2, 1, 1, 3), nrow = 2)
print(t(m))
cat("det: ", det(m), "\n", sep = "")
print(round(solve(m) %*% m, 10))
