"""The runner's own addition to the sandbox: a seccomp filter against tracing."""


# Tracing syscalls per architecture: (AUDIT_ARCH, ptrace, process_vm_readv, _writev).
_TRACING_SYSCALLS = {"x86_64": (0xC000003E, 101, 310, 311),
                     "aarch64": (0xC00000B7, 117, 270, 271)}


def forbid_tracing():
    """Install a seccomp filter (on top of the engine's) that makes ptrace and
    process_vm_readv/writev fail with EPERM for this process and everything it starts:
    kernel code cannot inspect or steer the kernel's other processes, its init included.
    Calls through another ABI (i386 or x32 on x86_64) are refused altogether, so they
    cannot go around it. Returns False where the architecture is unknown or the kernel
    refuses the filter."""
    import ctypes
    import platform

    numbers = _TRACING_SYSCALLS.get(platform.machine())
    if numbers is None:
        return False
    arch, *denied = numbers
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO(EPERM)
    program = [(ld, 0, 0, 4),  # the architecture: another one is refused
               (jeq, 0, 3 + len(denied), arch),
               (ld, 0, 0, 0),  # the syscall number
               (jge, 1 + len(denied), 0, 0x40000000)]  # x32 calls: refused
    for i, number in enumerate(denied):
        program.append((jeq, len(denied) - i, 0, number))
    program += [(ret, 0, 0, allow), (ret, 0, 0, deny)]

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte),
                    ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    filters = (Filter * len(program))(*program)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p,
                           ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(38, 1, None, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS, needed for a filter
        return False
    prog = Program(len(program), filters)
    return libc.prctl(22, 2, ctypes.addressof(prog), 0, 0) == 0  # PR_SET_SECCOMP, FILTER
