# Word frequency from standard input, most frequent first, ties alphabetical.
con <- file("stdin")
lines <- readLines(con)
close(con)
words <- unlist(strsplit(tolower(lines), "[^a-z]+"))
words <- words[words != ""]
freq <- as.data.frame(table(words), stringsAsFactors = FALSE)
freq <- freq[order(-freq$Freq, freq$words, method = "radix"), ]
cat(sprintf("%d %s\n", freq$Freq, freq$words), sep = "")
