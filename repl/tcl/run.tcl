# Sorna's Tcl driver: every run is evaluated at global level, so its variables and
# procs stay for the next; driven by the runner over fds 3 (runs in) and 4 (their ends
# out); see "Runner <-> driver" in docs/PROTOCOL.md. As in tclsh, a run's non-empty
# result is shown. SIGINT becomes an error of the run (Tclx's signal handling).
package require Tclx
fconfigure stdout -buffering line
signal ignore SIGINT

namespace eval sorna {
    variable in [open /dev/fd/3 rb]
    variable out [open /dev/fd/4 wb]

    proc emit {kind args} {
        variable out
        set header [list $kind]
        set body ""
        foreach field $args {
            set bytes [encoding convertto utf-8 $field]
            lappend header [string length $bytes]
            append body $bytes
        }
        puts -nonewline $out "[join $header " "]\n$body"
        flush $out
    }

    proc report {name message trace before} {
        emit error $name $message $trace [expr {$before ? 1 : 0}]
    }

    proc run {code} {
        if {![info complete $code]} {
            report SyntaxError "missing close-brace, bracket or quote" \
                "missing close-brace, bracket or quote" 1
            return
        }
        signal error SIGINT
        set status [catch {uplevel #0 $code} result options]
        signal ignore SIGINT
        catch {flush stdout}
        if {$status == 1} {
            set code [dict get $options -errorcode]
            if {[lrange $code 0 2] eq {POSIX SIG SIGINT}} {
                report Interrupt "" "interrupted" 0
            } else {
                set name [expr {$code eq "NONE" ? "error" : [lindex $code 0]}]
                report $name $result [dict get $options -errorinfo] 0
            }
        } elseif {$result ne ""} {
            emit result $result
        }
    }

    # Completion (between runs): commands, procs and global variables.
    proc complete {token} {
        set names [lsort -unique [concat [info commands $token*] \
                                         [uplevel #0 [list info vars $token*]]]]
        return [join [lrange $names 0 499] "\n"]
    }

    # Inspection (between runs): a variable's value, a proc's arguments and body.
    proc inspect {token} {
        if {[uplevel #0 [list info exists $token]]} {
            if {[uplevel #0 [list array exists $token]]} {
                return "$token: array\n[uplevel #0 [list array get $token]]"
            }
            return "$token: [string range [uplevel #0 [list set $token]] 0 3999]"
        }
        if {[llength [info procs ::$token]]} {
            return "$token: proc {[info args ::$token]}\n[info body ::$token]"
        }
        if {[llength [info commands ::$token]]} {
            return "$token: command"
        }
        return ""
    }
}

while {[gets $sorna::in header] >= 0} {
    lassign $header kind size
    set code [encoding convertfrom utf-8 [read $sorna::in $size]]
    switch -- $kind {
        complete { sorna::emit matches [sorna::complete $code] }
        inspect { sorna::emit found [sorna::inspect $code] }
        default { sorna::run $code; sorna::emit done }
    }
}
