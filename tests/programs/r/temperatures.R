# Convert Celsius readings to Fahrenheit; a reading below absolute zero is
# an error and ends the script with exit status 3.
celsius <- c(-40, 0, 37, 100, -300, 20)
for (c in celsius) {
  if (c < -273.15) {
    cat(sprintf("%.1f C is below absolute zero\n", c))
    quit(status = 3)
  }
  cat(sprintf("%7.1f C = %7.1f F\n", c, c * 9 / 5 + 32))
}
cat("all readings converted\n")
