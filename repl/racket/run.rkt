#lang racket/base
;; Sorna's Racket driver: every run is evaluated in one namespace of `racket`, so its
;; definitions stay for the next; driven by the runner over fds 3 (runs in) and 4
;; (their ends out); see "Runner <-> driver" in docs/PROTOCOL.md. As in Racket's REPL,
;; a run's values are printed.
(require racket/list racket/port racket/string)

(define sorna-in (open-input-file "/dev/fd/3"))
(define sorna-out (open-output-file "/dev/fd/4" #:exists 'append))
(file-stream-buffer-mode (current-output-port) 'line)
(define namespace (make-base-empty-namespace))
(parameterize ([current-namespace namespace]) (namespace-require 'racket))

(define (emit kind . fields)
  (define data (map string->bytes/utf-8 fields))
  (write-bytes (string->bytes/utf-8
                (string-append (string-join (cons kind (map (compose number->string
                                                                     bytes-length)
                                                            data)) " ")
                               "\n"))
               sorna-out)
  (for-each (lambda (d) (write-bytes d sorna-out)) data)
  (flush-output sorna-out))

(define (exn-name e)
  (define name (symbol->string (vector-ref (struct->vector e) 0)))
  (if (string-prefix? name "struct:") (substring name 7) name))

(define (report e before)
  (define message (if (exn? e) (exn-message e) (format "~v" e)))
  (define name (cond [(exn:break? e) "Interrupt"] [(exn? e) (exn-name e)] [else "raise"]))
  (emit "error" name (if (exn:break? e) "" message)
        (string-append name ": " message "\n") (if before "1" "0")))

(define (forms-of code)
  (parameterize ([read-accept-reader #t] [read-accept-lang #t])
    (define port (open-input-string code))
    (port-count-lines! port)
    (let loop ([forms '()])
      (define form (read-syntax 'input port))
      (if (eof-object? form) (reverse forms) (loop (cons form forms))))))

(define (run code)
  (define forms (with-handlers ([exn:fail? (lambda (e) (report e #t) #f)])
                  (forms-of code)))
  (when forms
    (with-handlers ([(lambda (e) #t) (lambda (e) (flush-output) (report e #f))])
      (define values-of-last
        (parameterize ([current-namespace namespace])
          (parameterize-break #t
            (for/last ([form (in-list forms)])
              (call-with-values (lambda () (eval form)) list)))))
      (flush-output)
      (for ([value (in-list (or values-of-last '()))] #:unless (void? value))
        (emit "result" (with-output-to-string (lambda () (print value))))))))

;; Completion (between runs): the names the session's namespace maps.
(define (complete token)
  (define names (for/list ([symbol (in-list (namespace-mapped-symbols namespace))]
                           #:when (string-prefix? (symbol->string symbol) token))
                  (symbol->string symbol)))
  (string-join (take (sort names string<?) (min 500 (length names))) "\n"))

;; Inspection (between runs): a name's value, a procedure's arity.
(define (inspect token)
  (define value (namespace-variable-value (string->symbol token) #t (lambda () (void))
                                          namespace))
  (cond [(void? value) ""]
        [(procedure? value)
         (format "~a: procedure of arity ~v" token (procedure-arity value))]
        [else (format "~a: ~v" token value)]))

(parameterize-break #f
  (let loop ()
    (define header (read-line sorna-in))
    (unless (eof-object? header)
      (define words (string-split header " "))
      (define size (string->number (cadr words)))
      (define code (if (> size 0) (bytes->string/utf-8 (read-bytes size sorna-in) #\?) ""))
      (case (car words)
        [("complete") (emit "matches" (with-handlers ([(lambda (e) #t) (lambda (e) "")])
                                        (complete code)))]
        [("inspect") (emit "found" (with-handlers ([(lambda (e) #t) (lambda (e) "")])
                                     (inspect code)))]
        [else (run code) (emit "done")])
      (loop))))
