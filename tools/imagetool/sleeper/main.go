// Command sleeper is the whole program of the harness's images: the pod sandbox ("pause")
// image and the private test images the real node pulls.
//
// It must be static (no libc in a one-file image), start instantly, and stop at once on
// SIGTERM: as PID 1 of a container the kernel ignores signals a process has no handler for,
// so without one every pod deletion would wait out its whole grace period. It prints one
// line at start so `kubectl logs` has something to show, and the name it was started as, so
// two images made from this binary are told apart in logs.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	fmt.Printf("%s: running as pid %d, waiting for SIGTERM\n", os.Args[0], os.Getpid())
	received := <-signals
	fmt.Printf("%s: %s, exiting\n", os.Args[0], received)
}
