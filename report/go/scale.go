// The Go side of the report's scale rows (report/src/report/scale.rs), run by the report
// with `go run report/go/scale.go TASKLETS RING_N...`: on one OS thread
// (GOMAXPROCS=1, as our scheduler), it
//
//  1. starts TASKLETS goroutines, each blocked receiving on a channel of its own, and
//     measures the time per goroutine until all are blocked and the resident set and page
//     tables per blocked goroutine (with its channel);
//  2. sends to each channel and measures the time per goroutine until all have finished;
//  3. for each RING_N, runs the hot-potato ring (RING_N goroutines, RING_N unbuffered
//     channels, at least 100 rounds and at least a million hops) and measures ns per hop.
//
// It prints one `key value` line per number.
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// statm returns the resident set in bytes; status returns VmPTE in bytes.
func rss() float64 {
	b, _ := os.ReadFile("/proc/self/statm")
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseFloat(f[1], 64)
	return pages * float64(os.Getpagesize())
}

func pte() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmPTE:") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb * 1024
		}
	}
	return 0
}

// cpu returns the CPU time (user + system) this process has used, ns: every thread's,
// the garbage collector's and the runtime's included.
func cpu() float64 {
	var r syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return float64(r.Utime.Nano() + r.Stime.Nano())
}

func million(n int) {
	chans := make([]chan int, n)
	for i := range chans {
		chans[i] = make(chan int)
	}
	var blocked atomic.Int64
	var done sync.WaitGroup
	done.Add(n)
	runtime.GC()
	rss0, pte0 := rss(), pte()
	start, cpu0 := time.Now(), cpu()
	for i := 0; i < n; i++ {
		ch := chans[i]
		go func() {
			blocked.Add(1)
			<-ch
			done.Done()
		}()
	}
	// Until every goroutine has run to its receive (it counts itself just before).
	for blocked.Load() < int64(n) {
		runtime.Gosched()
	}
	runtime.Gosched()
	spawn, spawnCPU := time.Since(start), cpu()-cpu0
	rss1, pte1 := rss(), pte()
	start, cpu0 = time.Now(), cpu()
	for _, ch := range chans {
		ch <- 1
	}
	done.Wait()
	wake, wakeCPU := time.Since(start), cpu()-cpu0
	fmt.Printf("spawn_ns %f\n", float64(spawn.Nanoseconds())/float64(n))
	fmt.Printf("spawn_cpu_ns %f\n", spawnCPU/float64(n))
	fmt.Printf("rss_bytes %f\n", (rss1-rss0)/float64(n))
	fmt.Printf("page_table_bytes %f\n", (pte1-pte0)/float64(n))
	fmt.Printf("wake_ns %f\n", float64(wake.Nanoseconds())/float64(n))
	fmt.Printf("wake_cpu_ns %f\n", wakeCPU/float64(n))
}

func rounds(n int) int {
	r := (1_000_000 + n - 1) / n
	if r < 100 {
		r = 100
	}
	return r
}

// ring mirrors report/src/report/scale/ring.rs: goroutine i receives `rounds` times and
// forwards each token to i+1, except the last goroutine's last token.
func ring(n int) float64 {
	rounds := rounds(n)
	chans := make([]chan int, n)
	for i := range chans {
		chans[i] = make(chan int)
	}
	var done sync.WaitGroup
	done.Add(n)
	var last atomic.Int64
	for i := 0; i < n; i++ {
		inp, out, i := chans[i], chans[(i+1)%n], i
		go func() {
			defer done.Done()
			for r := 0; r < rounds; r++ {
				v := <-inp
				if i == n-1 && r == rounds-1 {
					last.Store(int64(v))
					return
				}
				out <- v + 1
			}
		}()
	}
	hops := n * rounds
	start := time.Now()
	chans[0] <- 1
	done.Wait()
	elapsed := time.Since(start)
	if last.Load() != int64(hops) {
		fmt.Fprintf(os.Stderr, "ring %d: the token made %d hops, not %d\n", n, last.Load(), hops)
		os.Exit(1)
	}
	return float64(elapsed.Nanoseconds()) / float64(hops)
}

func main() {
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(100)
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: scale TASKLETS [RING_N...]")
		os.Exit(2)
	}
	n, _ := strconv.Atoi(os.Args[1])
	fmt.Printf("go_version %s\n", strings.TrimPrefix(runtime.Version(), "go"))
	million(n)
	runtime.GC()
	for _, a := range os.Args[2:] {
		m, _ := strconv.Atoi(a)
		fmt.Printf("ring_%d_ns %f\n", m, ring(m))
	}
}
