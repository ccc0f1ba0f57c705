;; Sorna's Clojure driver: every run is read and evaluated in the namespace `user`, so
;; its definitions stay for the next; driven by the runner over fds 3 (runs in) and 4
;; (their ends out); see "Runner <-> driver" in docs/PROTOCOL.md. As in Clojure's REPL,
;; a run's value is shown (nil is not). SIGINT stops the run (its thread), not the JVM.
(ns sorna.driver
  (:require [clojure.string :as str])
  (:import (java.io BufferedInputStream ByteArrayOutputStream FileInputStream
                    FileOutputStream PushbackReader StringReader)
           (sun.misc Signal SignalHandler)))

(def in (BufferedInputStream. (FileInputStream. "/dev/fd/3")))
(def out (FileOutputStream. "/dev/fd/4"))
(def main-thread (Thread/currentThread))
(def running (atom false))
(def user-ns (create-ns 'user))
(binding [*ns* user-ns] (refer-clojure))

(Signal/handle (Signal. "INT")
               (reify SignalHandler
                 (handle [_ _] (when @running (.stop ^Thread main-thread)))))

(defn emit [kind & fields]
  (let [data (map #(.getBytes (str %) "UTF-8") fields)
        header (str (str/join " " (cons kind (map alength data))) "\n")]
    (.write out (.getBytes header "UTF-8"))
    (doseq [d data] (.write out ^bytes d))
    (.flush out)))

(defn read-header []
  (let [buffer (ByteArrayOutputStream.)]
    (loop []
      (let [b (.read in)]
        (cond (neg? b) nil
              (= b 10) (.toString buffer "ISO-8859-1")
              :else (do (.write buffer b) (recur)))))))

(defn read-body [size]
  (let [bytes (byte-array size)]
    (loop [done 0]
      (when (< done size)
        (let [n (.read in bytes done (- size done))]
          (when (pos? n) (recur (+ done n))))))
    (String. bytes "UTF-8")))

(defn flush-all []
  (.flush *out*) (.flush *err*) (.flush System/out))

(defn report [^Throwable t before]
  (let [interrupted (instance? ThreadDeath t)
        name (if interrupted "Interrupt" (.getSimpleName (class t)))
        message (if interrupted "" (or (.getMessage t) ""))]
    (emit "error" name message (str name ": " message "\n") (if before "1" "0"))))

(defn forms-of [code]
  (binding [*ns* user-ns]
    (let [reader (PushbackReader. (StringReader. code))]
      (loop [forms []]
        (let [form (read {:eof ::eof} reader)]
          (if (= form ::eof) forms (recur (conj forms form))))))))

(defn run [code]
  (if-let [forms (try (forms-of code) (catch Throwable t (report t true) nil))]
    (try
      (reset! running true)
      (let [value (binding [*ns* user-ns]
                    (reduce (fn [_ form] (eval form)) nil forms))]
        (reset! running false)
        (flush-all)
        (when-not (nil? value) (emit "result" (pr-str value))))
      (catch Throwable t
        (reset! running false)
        (flush-all)
        (report (if (and (instance? clojure.lang.Compiler$CompilerException t)
                         (.getCause t))
                  (.getCause t) t)
                false)))))

;; Completion (between runs): the names `user` maps.
(defn complete [token]
  (->> (keys (ns-map user-ns)) (map str) (filter #(str/starts-with? % token))
       distinct sort (take 500) (str/join "\n")))

;; Inspection (between runs): a var's arguments, documentation and value.
(defn inspect [token]
  (if-let [v (ns-resolve user-ns (symbol token))]
    (if (var? v)
      (let [m (meta v)]
        (str token ": " (if (fn? @v) "function" (pr-str @v))
             (when (:arglists m) (str "\n" (pr-str (:arglists m))))
             (when (:doc m) (str "\n" (:doc m)))))
      (str token ": class " (.getName ^Class v)))
    ""))

(loop []
  (when-let [header (read-header)]
    (let [[kind size] (str/split header #" ")
          code (read-body (Long/parseLong size))]
      (case kind
        "complete" (emit "matches" (try (complete code) (catch Throwable _ "")))
        "inspect" (emit "found" (try (inspect code) (catch Throwable _ "")))
        (do (run code) (emit "done"))))
    (recur)))
