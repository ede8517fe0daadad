// Go beside the report's one-thread rows (report/src/report/go_peers.rs), run by the report
// with `go run report/go/loops.go -runs RUNS (-target-ns NS | -iterations N)` while the
// report's process is pinned to one CPU (the child inherits the mask), with GOMAXPROCS=1:
// one thread runs Go code, as our scheduler's. (runtime.LockOSThread is not used: a locked
// goroutine that blocks hands its P to another thread, so every wait would become an OS
// thread switch; the runtime's own threads, sysmon and the like, share the pinned CPU.)
//
// The loops mirror report/src/report/rows.rs:
//
//   - spawn_wait: `go f()` of a trivial function + sync.WaitGroup.Wait until it has run
//     (tasklet spawn + run to completion);
//   - chan_pingpong: two goroutines run the same echo loop over two unbuffered channels, main
//     starts the ball and takes the last value back (channel ping-pong, two tasklets);
//   - chan_asymmetric: main sends on one unbuffered channel and receives the echo on another,
//     a goroutine echoes (main <-> an echoing tasklet).
//
// Each is calibrated as the report calibrates its rows (grown tenfold from 100 iterations
// until a trial takes a twentieth of the target, at least 1 ms, then scaled to the target),
// unless -iterations fixes the count; then RUNS runs, the loops in turn. It prints
//
//	go_version 1.19.8
//	KEY_iterations N
//	KEY_ns NS_PER_OP_OF_RUN_1 NS_PER_OP_OF_RUN_2 ...
//
// per loop: the ns per operation of each run, in run order.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
)

// The most iterations a calibrated run does (as the report's MAX_CALIBRATED_ITERATIONS).
const maxIterations = 1 << 34

// perOp is the ns per operation of n operations that took d.
func perOp(d time.Duration, n int) float64 {
	if n < 1 {
		n = 1
	}
	return float64(d.Nanoseconds()) / float64(n)
}

// spawnWait: `go f()` + wait, n times, after one untimed to warm the goroutine free list.
func spawnWait(n int) float64 {
	var wg sync.WaitGroup
	f := func() { wg.Done() }
	wg.Add(1)
	go f()
	wg.Wait()
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go f()
		wg.Wait()
	}
	return perOp(time.Since(start), n)
}

// echo receives on in and sends the value + 1 on out, n times.
func echo(in <-chan int, out chan<- int, n int) {
	for i := 0; i < n; i++ {
		out <- (<-in) + 1
	}
}

// chanPingpong: two goroutines run echo, the second's last send goes to main (on a channel
// of its own: main receiving on a too would race the first echo for it). 2n + 1 handoffs, as
// the report's row.
func chanPingpong(n int) float64 {
	a, b, last := make(chan int), make(chan int), make(chan int)
	go echo(a, b, n)
	go func() {
		echo(b, a, n-1)
		last <- (<-b) + 1
	}()
	runtime.Gosched() // both block in their first receive before the clock starts
	start := time.Now()
	a <- 0
	v := <-last
	elapsed := time.Since(start)
	if v != 2*n {
		fmt.Fprintf(os.Stderr, "chan_pingpong: got %d, not %d\n", v, 2*n)
		os.Exit(1)
	}
	return perOp(elapsed, n)
}

// chanAsymmetric: main sends on a and receives on b, an echoing goroutine in between.
func chanAsymmetric(n int) float64 {
	a, b := make(chan int), make(chan int)
	go echo(a, b, n)
	runtime.Gosched() // the echo blocks in its receive before the clock starts
	start := time.Now()
	sum := 0
	for i := 0; i < n; i++ {
		a <- i
		sum += <-b
	}
	elapsed := time.Since(start)
	if want := n * (n + 1) / 2; sum != want {
		fmt.Fprintf(os.Stderr, "chan_asymmetric: sum %d, not %d\n", sum, want)
		os.Exit(1)
	}
	return perOp(elapsed, n)
}

// calibrate finds how many iterations of measure take about targetNs.
func calibrate(measure func(int) float64, targetNs float64) int {
	enough := targetNs / 20
	if enough < 1e6 {
		enough = 1e6
	}
	if enough > targetNs {
		enough = targetNs
	}
	n := 100
	for {
		ns := measure(n)
		if ns*float64(n) >= enough || n >= maxIterations {
			estimate := float64(maxIterations)
			if ns > 0 {
				estimate = targetNs / ns
			}
			if estimate < 1 {
				return 1
			}
			if estimate > maxIterations {
				return maxIterations
			}
			return int(estimate)
		}
		n *= 10
	}
}

type loop struct {
	key     string
	measure func(int) float64
}

func main() {
	runs := flag.Int("runs", 9, "runs per loop")
	targetNs := flag.Float64("target-ns", 60e6, "calibrate each run to take about this long")
	iterations := flag.Int("iterations", 0, "iterations per run (0: calibrate)")
	flag.Parse()
	runtime.GOMAXPROCS(1)
	loops := []loop{
		{"spawn_wait", spawnWait},
		{"chan_pingpong", chanPingpong},
		{"chan_asymmetric", chanAsymmetric},
	}
	counts := make([]int, len(loops))
	for i, l := range loops {
		counts[i] = *iterations
		if counts[i] <= 0 {
			counts[i] = calibrate(l.measure, *targetNs)
		}
	}
	results := make([][]string, len(loops))
	for r := 0; r < *runs; r++ {
		for i, l := range loops {
			results[i] = append(results[i], fmt.Sprintf("%f", l.measure(counts[i])))
		}
	}
	fmt.Printf("go_version %s\n", strings.TrimPrefix(runtime.Version(), "go"))
	for i, l := range loops {
		fmt.Printf("%s_iterations %d\n", l.key, counts[i])
		fmt.Printf("%s_ns %s\n", l.key, strings.Join(results[i], " "))
	}
}
