# Sorna's R driver: the session is R's global environment, driven by the runner over
# fds 3 (runs in) and 4 (their ends out); see "Runner <-> driver" in docs/PROTOCOL.md.
# Started as `R -f run.R` (`--interactive` would make R read its commands from stdin,
# the user's): R turns SIGINT into an `interrupt` condition all the same.
local({
  input <- file("/dev/fd/3", open = "rb")
  output <- file("/dev/fd/4", open = "wb")
  plots <- tempfile("sorna-plots-")
  dir.create(plots)
  options(device = function(...) grDevices::png(file.path(plots, "plot-%03d.png"),
                                                type = "cairo", ...),
          warn = 1, menu.graphics = FALSE)

  emit <- function(kind, ...) {
    fields <- lapply(list(...), function(f) if (is.raw(f)) f else charToRaw(enc2utf8(f)))
    header <- paste(c(kind, vapply(fields, length, 1L)), collapse = " ")
    writeBin(c(charToRaw(paste0(header, "\n")), unlist(fields)), output)
    flush(output)
  }
  read_header <- function() {
    bytes <- raw(0)
    repeat {
      byte <- readBin(input, "raw", 1L)
      if (length(byte) == 0L) quit(save = "no", status = 0)
      if (byte == as.raw(10L)) return(strsplit(rawToChar(bytes), " ")[[1]])
      bytes <- c(bytes, byte)
    }
  }
  report <- function(name, message, trace, before) {
    emit("error", name, message, trace, if (before) "1" else "0")
  }
  run <- function(code) {
    exprs <- tryCatch(parse(text = code, keep.source = FALSE, encoding = "UTF-8"),
                      error = function(e) e)
    if (inherits(exprs, "error")) {
      return(report("SyntaxError", conditionMessage(exprs), conditionMessage(exprs), TRUE))
    }
    tryCatch({
      for (i in seq_along(exprs)) {
        shown <- withVisible(eval(exprs[[i]], envir = globalenv()))
        if (!shown$visible) next
        if (i < length(exprs)) {
          print(shown$value)
        } else {  # the run's value, as R prints it
          text <- utils::capture.output(print(shown$value))
          emit("result", paste(text, collapse = "\n"))
        }
      }
    }, interrupt = function(i) report("Interrupt", "", "interrupted", FALSE),
    error = function(e) {
      call <- conditionCall(e)
      report(class(e)[1], conditionMessage(e),
             paste0("Error", if (!is.null(call)) paste0(" in ", deparse(call)[1]), ": ",
                    conditionMessage(e)), FALSE)
    })
  }
  # Completion (between runs): R's own, as its console does it (utils' rcompgen).
  complete <- function(token) {
    utils:::.assignLinebuffer(token)
    utils:::.assignEnd(nchar(token))
    utils:::.guessTokenFromLine()
    utils:::.completeToken()
    matches <- utils:::.retrieveCompletions()
    head(sub("\\($", "", matches[startsWith(matches, token)]), 500L)
  }
  # Inspection (between runs): a function's signature or a value's structure, and R's
  # help page for the name when it has one.
  describe <- function(token) {
    if (!nzchar(token) || !exists(token, envir = globalenv())) return("")
    value <- get(token, envir = globalenv())
    shown <- if (is.function(value)) {
      signature <- deparse(args(value))
      paste0(token, sub("^function ", "", paste(trimws(signature[signature != "NULL"]),
                                                collapse = " ")))
    } else utils::capture.output(utils::str(value))
    page <- tryCatch({
      found <- utils::help(token)
      if (length(found)) utils::capture.output(tools::Rd2txt(
        utils:::.getHelpFile(found), options = list(underline_titles = FALSE)))
      else character(0)
    }, error = function(e) character(0))
    substr(paste(c(shown, if (length(page)) c("", page)), collapse = "\n"), 1L, 20000L)
  }
  repeat {
    header <- read_header()
    size <- as.integer(header[2])
    code <- if (size > 0L) rawToChar(readBin(input, "raw", size)) else ""
    Encoding(code) <- "UTF-8"
    if (header[1] == "complete") {
      matches <- tryCatch(complete(code), error = function(e) character(0))
      emit("matches", paste(matches, collapse = "\n"))
      next
    }
    if (header[1] == "inspect") {
      emit("found", tryCatch(describe(code), error = function(e) ""))
      next
    }
    run(code)
    while (grDevices::dev.cur() > 1L) grDevices::dev.off()
    for (png in sort(list.files(plots, full.names = TRUE))) {
      emit("media", "image/png", readBin(png, "raw", file.info(png)$size))
      unlink(png)
    }
    flush(stdout())
    flush(stderr())
    emit("done")
  }
})
