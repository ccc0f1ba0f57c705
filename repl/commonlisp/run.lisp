;;; Sorna's Common Lisp (SBCL) driver: every run is read and evaluated in CL-USER, so
;;; its definitions stay for the next; driven by the runner over fds 3 (runs in) and 4
;;; (their ends out); see "Runner <-> driver" in docs/PROTOCOL.md. As in SBCL's REPL, a
;;; run's values are printed (but not NIL).
(defpackage :sorna-driver (:use :cl))
(in-package :sorna-driver)

(defvar *in* (sb-sys:make-fd-stream 3 :input t :element-type '(unsigned-byte 8)
                                      :buffering :full))
(defvar *out* (sb-sys:make-fd-stream 4 :output t :element-type '(unsigned-byte 8)
                                       :buffering :full))
(defvar *running* nil)
(define-condition interrupted (error) ()
  (:report (lambda (condition stream) (declare (ignore condition))
             (write-string "interrupted" stream))))

;; SIGINT interrupts a run (the session stays); between runs it means nothing.
(sb-sys:enable-interrupt sb-unix:sigint
                         (lambda (&rest arguments) (declare (ignore arguments))
                           (when *running* (error 'interrupted))))

(defun octets (string) (sb-ext:string-to-octets string :external-format :utf-8))

(defun emit (kind &rest fields)
  (let ((data (mapcar #'octets fields)))
    (write-sequence (octets (format nil "~a~{ ~d~}~%" kind (mapcar #'length data))) *out*)
    (dolist (field data) (write-sequence field *out*))
    (finish-output *out*)))

(defun read-header ()
  (let ((bytes (loop for byte = (read-byte *in* nil nil)
                     until (or (null byte) (= byte 10)) collect byte)))
    (when (or bytes (listen *in*))
      (sb-ext:octets-to-string (coerce bytes '(vector (unsigned-byte 8)))
                               :external-format :latin-1))))

(defun read-body (size)
  (let ((buffer (make-array size :element-type '(unsigned-byte 8))))
    (read-sequence buffer *in*)
    (sb-ext:octets-to-string buffer :external-format '(:utf-8 :replacement #\?))))

(defun condition-name (condition)
  (if (typep condition 'interrupted) "Interrupt"
      (string-downcase (symbol-name (type-of condition)))))

(defun report (condition before)
  (let ((message (handler-case (princ-to-string condition) (error () "?"))))
    (emit "error" (condition-name condition)
          (if (typep condition 'interrupted) "" message)
          (format nil "~a: ~a~%" (condition-name condition) message)
          (if before "1" "0"))))

(defun forms-of (code)
  (let ((*package* (find-package :cl-user)))
    (with-input-from-string (stream code)
      (loop with end = (gensym)
            for form = (read stream nil end)
            until (eq form end) collect form))))

(defun run (code)
  (let ((forms (handler-case (forms-of code)
                 (error (condition) (report condition t) (return-from run)))))
    (handler-case
        (let ((values (let ((*package* (find-package :cl-user)) (*running* t))
                        (let (last)
                          (dolist (form forms last)
                            (setf last (multiple-value-list (eval form))))))))
          (finish-output *standard-output*)
          (dolist (value (remove nil values))  ; NIL, what FORMAT returns, is not shown
            (emit "result" (let ((*package* (find-package :cl-user)))
                             (prin1-to-string value)))))
      (error (condition)
        (finish-output *standard-output*)
        (report condition nil)))))

;; Completion (between runs): the symbols CL-USER sees, in lower case as people type.
(defun complete (token)
  (let ((prefix (string-upcase token)) (names '()))
    (do-symbols (symbol (find-package :cl-user))
      (let ((name (symbol-name symbol)))
        (when (and (<= (length prefix) (length name))
                   (string= prefix name :end2 (length prefix))
                   (or (boundp symbol) (fboundp symbol)))
          (pushnew (string-downcase name) names :test #'string=))))
    (format nil "~{~a~^~%~}" (subseq (sort names #'string<) 0 (min 500 (length names))))))

;; Inspection (between runs): what DESCRIBE says of the symbol.
(defun inspect-name (token)
  (multiple-value-bind (symbol status)
      (find-symbol (string-upcase token) (find-package :cl-user))
    (if (and status (or (boundp symbol) (fboundp symbol)))
        (let ((text (with-output-to-string (stream) (describe symbol stream))))
          (subseq text 0 (min 4000 (length text))))
        "")))

(loop for header = (read-header)
      while header
      do (let* ((space (position #\Space header))
                (kind (subseq header 0 space))
                (size (parse-integer header :start (1+ space)))
                (code (if (plusp size) (read-body size) "")))
           (cond ((string= kind "complete")
                  (emit "matches" (handler-case (complete code) (error () ""))))
                 ((string= kind "inspect")
                  (emit "found" (handler-case (inspect-name code) (error () ""))))
                 (t (run code) (emit "done")))))
