package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clkTck is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports.
const clkTck = 100

// CPU is utime+stime of a process (all its threads) from /proc/PID/stat,
// at 10 ms resolution.
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields count from the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime/stime: %v %v", pid, err1, err2)
	}
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// Status reads a "kB" field of /proc/PID/status (VmRSS, VmHWM, RssAnon…),
// in bytes.
func Status(pid int, field string) (int64, error) {
	return kBField(fmt.Sprintf("/proc/%d/status", pid), field)
}

// MemInfo reads a field of /proc/meminfo (MemTotal, MemAvailable…), in
// bytes.
func MemInfo(field string) (int64, error) { return kBField("/proc/meminfo", field) }

// kBField reads a "Field: N kB" line of a /proc file, in bytes.
func kBField(path, field string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("%s has no %s", path, field)
}
