package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the unit of the CPU times in /proc/PID/stat. Go has no
// sysconf(_SC_CLK_TCK); Linux reports USER_HZ, which is 100 on every
// architecture Go supports, so a tick is 10 ms.
const clockTick = 10 * time.Millisecond

// procStat is the part of /proc/PID/stat the harness needs.
type procStat struct {
	ppid           int
	utime, stime   int64 // ticks this process ran
	cutime, cstime int64 // ticks of its reaped children
}

// readProcStat parses /proc/PID/stat. The command name (field 2) is in
// parentheses and may hold spaces or parentheses itself, so the fields are
// counted from the last ')'.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	// f[0] is field 3 (state).
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	num := func(field int) int64 {
		v, _ := strconv.ParseInt(f[field-3], 10, 64)
		return v
	}
	return procStat{
		ppid:   int(num(4)),
		utime:  num(14),
		stime:  num(15),
		cutime: num(16),
		cstime: num(17),
	}, nil
}

// processCPU is the CPU time one process has used so far (user + system).
func processCPU(pid int) (time.Duration, error) {
	st, err := readProcStat(pid)
	if err != nil {
		return 0, fmt.Errorf("CPU of process %d: %w", pid, err)
	}
	return time.Duration(st.utime+st.stime) * clockTick, nil
}

// treeCPU is the CPU time used so far by a server process and its children:
// the process itself, every live child, and (through cutime/cstime) every
// child that has exited and been reaped. PostgreSQL's postmaster reaps its
// backends, so a backend that exits during a measured run still counts: its
// time moves from the live-child sum to the postmaster's cutime, and the
// difference of two readings stays right.
func treeCPU(root int) (time.Duration, error) {
	rs, err := readProcStat(root)
	if err != nil {
		return 0, fmt.Errorf("CPU of process tree %d: %w", root, err)
	}
	ticks := rs.utime + rs.stime + rs.cutime + rs.cstime
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("list /proc: %w", err)
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == root {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil || st.ppid != root {
			continue // gone meanwhile, or not a child
		}
		// A live child's own reaped children (none for PostgreSQL's
		// backends, but cheap to be right) count too.
		ticks += st.utime + st.stime + st.cutime + st.cstime
	}
	return time.Duration(ticks) * clockTick, nil
}

// childCPU is the CPU time of an exited child process, from the rusage
// wait4 returned.
//
// Its ru_maxrss is not used for peak RSS: Go starts children with
// clone(CLONE_VFORK|CLONE_VM), so until exec the child shares our address
// space, and at exec Linux records that address space's high-water mark in
// the child's maxrss. Every child would report at least the harness's own
// peak (a child running /bin/true from a parent of 100 MB reports 100 MB).
// watchPeakRSS reads the child's own VmHWM instead.
func childCPU(ps *os.ProcessState) time.Duration {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return ps.UserTime() + ps.SystemTime()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// watchPeakRSS samples the process's VmHWM (its resident set's high-water
// mark since exec, in KiB) every 10 ms until stop is closed, then sends the
// last value read. VmHWM only grows, so the last reading is the peak but for
// what the process adds in its final 10 ms; after the process exits and
// before it is reaped, its status has no VmHWM and the reading stays.
func watchPeakRSS(pid int, stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	path := fmt.Sprintf("/proc/%d/status", pid)
	go func() {
		var peak int64
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if v := readVmHWM(path); v > peak {
				peak = v
			}
			select {
			case <-stop:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}

func readVmHWM(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	_, rest, ok := bytes.Cut(b, []byte("VmHWM:"))
	if !ok {
		return 0
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	f := strings.Fields(string(line)) // "12345 kB"
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseInt(f[0], 10, 64)
	return v
}

// postmasterPID reads the first line of postmaster.pid in the server's data
// directory.
func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("read postmaster.pid: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0, fmt.Errorf("postmaster.pid: first line %q is not a PID", line)
	}
	return pid, nil
}
