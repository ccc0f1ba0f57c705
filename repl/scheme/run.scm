;; Sorna's Scheme (GNU Guile) driver: every run is evaluated in one module, so its
;; definitions stay for the next; driven by the runner over fds 3 (runs in) and 4
;; (their ends out); see "Runner <-> driver" in docs/PROTOCOL.md. As in Guile's REPL,
;; a run's last value is shown.
(use-modules (ice-9 rdelim) (ice-9 session) (rnrs bytevectors) (ice-9 binary-ports)
             (srfi srfi-1))

(define sorna-in (fdes->inport 3))
(define sorna-out (fdes->outport 4))
(set-port-encoding! sorna-in "ISO-8859-1")  ; headers are ASCII, bodies read as bytes
(setvbuf (current-output-port) 'line)
(setvbuf (current-error-port) 'none)
(define sorna-module (make-fresh-user-module))  ; the user's names, apart from ours
(define sorna-running #f)

(define (sorna-emit kind . fields)
  (let ((data (map (lambda (f) (string->utf8 f)) fields)))
    (put-bytevector sorna-out
      (string->utf8 (string-append
                     (string-join (cons kind (map (lambda (d) (number->string
                                                               (bytevector-length d)))
                                                  data)) " ")
                     "\n")))
    (for-each (lambda (d) (put-bytevector sorna-out d)) data)
    (force-output sorna-out)))

;; SIGINT interrupts a run (the state stays); between runs it means nothing.
(sigaction SIGINT (lambda (signal) (when sorna-running (throw 'interrupt))))

(define (sorna-message key args)
  (cond ((and (pair? args) (= (length args) 4) (string? (cadr args)))
         (catch #t (lambda () (apply format #f (cadr args) (or (caddr args) '())))
           (lambda _ (object->string args))))
        ((eq? key 'interrupt) "")
        (else (object->string args))))

(define (sorna-report key args before)
  (let ((message (sorna-message key args)))
    (sorna-emit "error" (if (eq? key 'interrupt) "Interrupt" (symbol->string key))
                message
                (if (string-null? message) (symbol->string key)
                    (string-append (symbol->string key) ": " message "\n"))
                (if before "1" "0"))))

(define (sorna-forms code)
  "The forms of CODE, read before any is evaluated."
  (call-with-input-string code
    (lambda (port)
      (let loop ((forms '()))
        (let ((form (read port)))
          (if (eof-object? form) (reverse forms) (loop (cons form forms))))))))

(define (sorna-run code)
  (catch #t
    (lambda ()
      (let ((forms (sorna-forms code)))
        (catch #t
          (lambda ()
            (set! sorna-running #t)
            (let ((value (let loop ((forms forms) (value *unspecified*))
                           (if (null? forms) value
                               (loop (cdr forms) (eval (car forms) sorna-module))))))
              (set! sorna-running #f)
              (force-output (current-output-port))
              (unless (unspecified? value)
                (sorna-emit "result" (object->string value)))))
          (lambda (key . args)
            (set! sorna-running #f)
            (force-output (current-output-port))
            (sorna-report key args #f)))))
    (lambda (key . args) (sorna-report key args #t))))

;; Completion (between runs): the session's names and those of the modules it uses.
(define (sorna-complete token)
  (let ((names '()))
    (define (add module)
      (module-for-each
       (lambda (symbol variable)
         (let ((name (symbol->string symbol)))
           (when (string-prefix? token name) (set! names (cons name names)))))
       module))
    (add sorna-module)
    (for-each add (module-uses sorna-module))
    (let ((found (sort (delete-duplicates names) string<?)))
      (string-join (list-head found (min 500 (length found))) "\n"))))

;; Inspection (between runs): what a name is bound to, a procedure's arguments and
;; documentation.
(define (sorna-inspect token)
  (let ((variable (module-variable sorna-module (string->symbol token))))
    (if (not (and variable (variable-bound? variable))) ""
        (let ((value (variable-ref variable)))
          (if (procedure? value)
              (string-append token ": procedure "
                             (object->string (procedure-arguments value)) "\n"
                             (or (procedure-documentation value) ""))
              (string-append token ": " (object->string value)))))))

(let loop ()
  (let ((header (read-line sorna-in)))
    (unless (eof-object? header)
      (let* ((words (string-split header #\space))
             (kind (car words))
             (size (string->number (cadr words)))
             (code (if (> size 0) (utf8->string (get-bytevector-n sorna-in size)) "")))
        (cond ((string=? kind "complete")
               (sorna-emit "matches" (catch #t (lambda () (sorna-complete code))
                                       (lambda _ ""))))
              ((string=? kind "inspect")
               (sorna-emit "found" (catch #t (lambda () (sorna-inspect code))
                                     (lambda _ ""))))
              (else (sorna-run code) (sorna-emit "done")))
        (loop)))))
