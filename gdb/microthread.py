# gdb/microthread.py: gdb commands for programs that use microthread (Rust tasklets).
#
#   info tasklets          every live tasklet of every thread with a scheduler: id, name,
#                          state, stack use, saved stack pointer (read from memory, so it
#                          works on a live process and on a core file alike)
#   tasklet bt N [FULL]    the backtrace of tasklet N: gdb's registers are switched to its
#                          saved context, `bt` runs, and the registers are put back
#
# Load it with `source /path/to/microthread/gdb/microthread.py`, or let gdb load it: every
# binary that links microthread names this file in its `.debug_gdb_scripts` section, which
# gdb follows once the directory is trusted: `add-auto-load-safe-path /path/to/microthread/gdb`
# (in ~/.gdbinit). See the README's "Debugging".
#
# Everything is read through `microthread_debug_root` (src/scheduler/debug_root.rs), a
# repr(C) record found by its symbol name: no debug information is needed. The saved frame
# of a suspended tasklet is the one drawn at the top of asm/<arch>.S.

import re
import struct

import gdb

ROOT_SYMBOL = "microthread_debug_root"
MAGIC = b"mthread\0"
LAYOUT_FIELDS = [
    "arch", "sched_current", "sched_main", "sched_all", "sched_innermost",
    "inner_id", "inner_is_main", "inner_all_next", "inner_ring_next", "inner_context",
    "inner_stack", "inner_life", "inner_blocked", "inner_preserve_fp_env",
    "range_base", "range_guard", "range_usable",
    "life_new", "life_started", "life_dead", "life_bound", "blocked_sleeping",
]
NAME_FIELDS = ["inner_name", "name_ptr", "name_len", "name_cap"]
NO_OFFSET = (1 << 64) - 1
# A walk longer than this is a list caught in the middle of a change (or garbage).
MAX_WALK = 1 << 20

# Saved frames (asm/<arch>.S): (register, offset) pairs restored into gdb, the offset of the
# resume pc, the frame's size (the suspended caller's sp is frame + size), and for a frame
# suspended by microthread_ctx_switch_fpenv the offset of the real return address and the
# larger size.
FRAMES = {
    1: {  # x86_64
        "regs": [("r12", 0x00), ("r13", 0x08), ("r14", 0x10), ("r15", 0x18),
                 ("rbx", 0x20), ("rbp", 0x28)],
        "pc": 0x30, "size": 0x38, "fp_pc": 0x40, "fp_size": 0x48,
        "sp": "rsp", "pc_reg": "rip", "link": None,
    },
    2: {  # aarch64
        "regs": [("x19", 0x40), ("x20", 0x48), ("x21", 0x50), ("x22", 0x58),
                 ("x23", 0x60), ("x24", 0x68), ("x25", 0x70), ("x26", 0x78),
                 ("x27", 0x80), ("x28", 0x88), ("x29", 0x90), ("x30", 0x98)],
        "pc": 0x98, "size": 0xa0, "fp_pc": 0xa8, "fp_size": 0xb0,
        "sp": "sp", "pc_reg": "pc", "link": "x30",
    },
    3: {  # riscv64
        "regs": [("fp", 0x00), ("s1", 0x08), ("s2", 0x10), ("s3", 0x18), ("s4", 0x20),
                 ("s5", 0x28), ("s6", 0x30), ("s7", 0x38), ("s8", 0x40), ("s9", 0x48),
                 ("s10", 0x50), ("s11", 0x58), ("ra", 0x60)],
        "pc": 0x60, "size": 0xd0, "fp_pc": 0xd8, "fp_size": 0xe0,
        "sp": "sp", "pc_reg": "pc", "link": "ra",
    },
}


class MicrothreadError(gdb.GdbError):
    pass


def _inferior():
    inf = gdb.selected_inferior()
    if inf is None or (inf.pid == 0 and not _has_core()):
        raise MicrothreadError("microthread: no process or core file to read")
    return inf


def _has_core():
    try:
        return "core" in gdb.execute("info target", to_string=True).lower()
    except gdb.error:
        return False


class Memory:
    def __init__(self, inf):
        self.inf = inf

    def read(self, addr, n):
        return bytes(self.inf.read_memory(addr, n))

    def u64(self, addr):
        return struct.unpack("<Q", self.read(addr, 8))[0]

    def i8(self, addr):
        return struct.unpack("<b", self.read(addr, 1))[0]

    def u8(self, addr):
        return self.read(addr, 1)[0]


def _root_address():
    # `info address` works whatever the current language (a C cast does not parse in Rust)
    # and without debug information.
    try:
        text = gdb.execute("info address %s" % ROOT_SYMBOL, to_string=True)
        m = re.search(r" is at (0x[0-9a-fA-F]+)", text) or re.search(r"(0x[0-9a-fA-F]+)", text)
        if m:
            return int(m.group(1), 16)
    except gdb.error:
        pass
    raise MicrothreadError(
            "microthread: no symbol %s: this program does not use microthread, or was "
            "stripped of its symbol table" % ROOT_SYMBOL)


class Tasklet:
    pass


class Thread:
    pass


def _read_all():
    """Every thread with a scheduler, with its live tasklets (oldest first)."""
    mem = Memory(_inferior())
    root = _root_address()
    if mem.read(root, 8) != MAGIC:
        raise MicrothreadError("microthread: %s has no valid magic (not microthread's root?)"
                               % ROOT_SYMBOL)
    version = mem.u64(root + 8)
    if version != 1:
        raise MicrothreadError("microthread: debug root version %d; this script reads 1"
                               % version)
    head = mem.u64(root + 16)
    words = [mem.u64(root + 24 + 8 * i) for i in range(len(LAYOUT_FIELDS) + len(NAME_FIELDS))]
    L = dict(zip(LAYOUT_FIELDS + NAME_FIELDS, words))
    threads = []
    node, n = head, 0
    while node and n < MAX_WALK:
        n += 1
        t = Thread()
        t.node = node
        t.scheduler = mem.u64(node + 8)
        t.os_tid = mem.u64(node + 16)
        name_ptr, name_len = mem.u64(node + 24), mem.u64(node + 32)
        t.name = None
        if name_ptr and name_len < 4096:
            t.name = mem.read(name_ptr, name_len).decode("utf-8", "replace")
        node = mem.u64(node)
        if not t.scheduler:
            continue  # made in advance, its thread has not started it yet
        t.tasklets = _read_tasklets(mem, L, t.scheduler)
        threads.append(t)
    threads.reverse()  # the list is newest first
    return L, threads


def _read_tasklets(mem, L, s):
    current = mem.u64(s + L["sched_current"])
    innermost = mem.u64(s + L["sched_innermost"])
    out = []
    p, n = mem.u64(s + L["sched_all"]), 0
    while p and n < MAX_WALK:
        n += 1
        t = Tasklet()
        t.addr = p
        life = mem.u8(p + L["inner_life"])
        t.id = mem.u64(p + L["inner_id"])
        t.is_main = mem.u8(p + L["inner_is_main"]) != 0
        t.context = mem.u64(p + L["inner_context"])
        t.fp_env = mem.u8(p + L["inner_preserve_fp_env"]) != 0
        blocked = mem.i8(p + L["inner_blocked"])
        in_ring = mem.u64(p + L["inner_ring_next"]) != 0
        started = life == L["life_started"]
        if p == current:
            t.state = "running"
        elif blocked == L["blocked_sleeping"]:
            t.state = "sleeping"
        elif blocked > 0:
            t.state = "blocked sending"
        elif blocked < 0:
            t.state = "blocked receiving"
        elif in_ring:
            t.state = "runnable" if started else "runnable, not started"
        elif p == innermost:
            t.state = "waiting in run()"
        else:
            t.state = "paused" if started else "paused, not started"
        t.name = _read_name(mem, L, p)
        t.stack_top = t.stack_size = None
        stack = mem.u64(p + L["inner_stack"])
        if stack:
            base = mem.u64(stack + L["range_base"])
            guard = mem.u64(stack + L["range_guard"])
            usable = mem.u64(stack + L["range_usable"])
            if base == 0:
                # An arena slot's range lives in the slot's top page, just above the stack's
                # top, and a core file from gcore may lack it (see below): the range's own
                # address is then the top, and the size is unknown.
                t.stack_size = 0
                t.stack_top = stack
            else:
                t.stack_size = usable
                t.stack_top = base + guard + usable
        alive = life in (L["life_new"], L["life_started"])
        p = mem.u64(p + L["inner_all_next"])
        if alive:
            out.append(t)
    out.reverse()  # the list is newest first
    return out


def _read_name(mem, L, p):
    if NO_OFFSET in (L["inner_name"], L["name_ptr"], L["name_len"], L["name_cap"]):
        return None
    base = p + L["inner_name"]
    ptr = mem.u64(base + L["name_ptr"])
    length = mem.u64(base + L["name_len"])
    cap = mem.u64(base + L["name_cap"])
    if ptr == 0 or cap >= (1 << 63) or length > cap or length > 4096:
        return None
    return mem.read(ptr, length).decode("utf-8", "replace")


def _gdb_thread_of(os_tid):
    for th in gdb.selected_inferior().threads():
        if th.ptid[1] == os_tid:
            return th
    return None


def _describe(t):
    s = "tasklet %d" % t.id
    if t.name is not None:
        s += ' "%s"' % t.name
    if t.is_main:
        s += " (main)"
    s += ": " + t.state
    if t.stack_size is not None and t.context and t.stack_top >= t.context:
        s += "; stack %d of %d bytes used" % (t.stack_top - t.context, t.stack_size)
    elif t.stack_size is not None:
        s += "; stack of %d bytes" % t.stack_size
    if t.context:
        s += "; saved sp 0x%x" % t.context
    elif t.state != "running":
        # Blocked with nothing else to run: its thread waits (for mail or a timer) on this
        # tasklet's own stack, so its registers are the thread's.
        s += "; its thread waits on its stack"
    return s


class InfoTasklets(gdb.Command):
    """List every live tasklet of every thread that has a microthread scheduler.

Usage: info tasklets
Read from memory (works on a core file): id, name, state (running, runnable, blocked
sending/receiving, sleeping, waiting in run(), paused), stack use and saved stack pointer.
Use `tasklet bt N` for a tasklet's backtrace."""

    def __init__(self):
        super().__init__("info tasklets", gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        _, threads = _read_all()
        if not threads:
            print("microthread: no thread has a scheduler")
            return
        for th in threads:
            count = len(th.tasklets)
            line = "thread %d" % th.os_tid
            if th.name is not None:
                line += ' "%s"' % th.name
            g = _gdb_thread_of(th.os_tid)
            if g is not None:
                line += " (gdb thread %d)" % g.num
            print("%s: %d tasklet%s" % (line, count, "" if count == 1 else "s"))
            for t in th.tasklets:
                print("  " + _describe(t))


def _find(threads, tasklet_id):
    for th in threads:
        for t in th.tasklets:
            if t.id == tasklet_id:
                return th, t
    raise MicrothreadError("microthread: no live tasklet %d (see `info tasklets`)" % tasklet_id)


def _resume_registers(L, t, mem):
    """The registers of tasklet t as its saved frame holds them: [(name, value)]."""
    frame = FRAMES.get(L["arch"])
    if frame is None:
        raise MicrothreadError("microthread: no saved-frame layout for this architecture")
    sp = t.context
    pc = mem.u64(sp + frame["pc"])
    size = frame["size"]
    symbol = gdb.execute("info symbol 0x%x" % pc, to_string=True)
    if symbol.startswith("microthread_ctx_switch_fpenv"):
        # Suspended by the FP-environment switch: its real return address is further up.
        pc = mem.u64(sp + frame["fp_pc"])
        size = frame["fp_size"]
    regs = [(name, mem.u64(sp + off)) for name, off in frame["regs"]]
    if frame["link"]:
        regs = [(n, v) for n, v in regs if n != frame["link"]] + [(frame["link"], pc)]
    regs.append((frame["sp"], sp + size))
    regs.append((frame["pc_reg"], pc))
    return regs


class TaskletCommand(gdb.Command):
    """Commands for microthread tasklets. See `help tasklet bt`."""

    def __init__(self):
        super().__init__("tasklet", gdb.COMMAND_STACK, prefix=True)


class TaskletBt(gdb.Command):
    """Backtrace of a microthread tasklet.

Usage: tasklet bt N [BT-ARGS]
Switches gdb's registers (of the tasklet's thread) to tasklet N's saved context, runs
`bt BT-ARGS`, and puts the registers back. For the running tasklet, the thread's own `bt`.
On a core file gdb refuses to write registers: then only the tasklet's resume point is
shown."""

    def __init__(self):
        super().__init__("tasklet bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        argv = gdb.string_to_argv(arg)
        if not argv:
            raise MicrothreadError("usage: tasklet bt N [BT-ARGS]")
        try:
            tasklet_id = int(argv[0], 0)
        except ValueError:
            raise MicrothreadError("microthread: %r is not a tasklet id" % argv[0])
        rest = " ".join(argv[1:])
        L, threads = _read_all()
        th, t = _find(threads, tasklet_id)
        print(_describe(t))
        old_thread = gdb.selected_thread()
        g = _gdb_thread_of(th.os_tid)
        if g is not None:
            g.switch()
        try:
            if t.state == "running" or not t.context:
                gdb.execute("bt " + rest)
                return
            _bt_in_context(L, t, Memory(_inferior()), rest)
        finally:
            if old_thread is not None and old_thread.is_valid():
                old_thread.switch()


def _bt_in_context(L, t, mem, rest):
    regs = _resume_registers(L, t, mem)
    gdb.execute("frame 0", to_string=True)
    frame0 = gdb.selected_frame()
    saved = [(name, int(frame0.read_register(name))) for name, _ in regs]
    try:
        try:
            for name, value in regs:
                gdb.execute("set var $%s = %d" % (name, value), to_string=True)
        except gdb.error as e:
            # A core file's registers cannot be written: show where the tasklet resumes.
            pc = dict(regs)[FRAMES[L["arch"]]["pc_reg"]]
            print("microthread: gdb cannot switch registers here (%s)" % e)
            if pc == 0:
                print("microthread: the tasklet's saved frame reads as zeros: its stack is "
                      "not in this core file (gdb's gcore leaves out memory it cannot read "
                      "in one piece, such as stacks next to guard regions)")
            else:
                print("microthread: it resumes at:")
                gdb.execute("info symbol 0x%x" % pc)
                gdb.execute("info line *0x%x" % pc)
            return
        gdb.execute("bt " + rest)
    finally:
        gdb.execute("frame 0", to_string=True)
        for name, value in saved:
            try:
                gdb.execute("set var $%s = %d" % (name, value), to_string=True)
            except gdb.error:
                pass


InfoTasklets()
TaskletCommand()
TaskletBt()
