// Command filepathmatch answers, for each JSON line ["pattern", "name"] on stdin, what Go's
// path/filepath.Match returns — the function the kubelet's credential keyring uses on each
// host label (pkg/credentialprovider URLsMatch). It prints one JSON line per input:
// {"match": bool, "error": bool}. The Python tests compare webhook.core.registry.glob_match
// with it; the kubelet treats an error as "no match".
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		var pair [2]string
		if err := json.Unmarshal(in.Bytes(), &pair); err != nil {
			fmt.Fprintln(os.Stderr, "bad input line:", err)
			os.Exit(2)
		}
		matched, err := filepath.Match(pair[0], pair[1])
		answer, _ := json.Marshal(map[string]bool{"match": matched, "error": err != nil})
		out.Write(answer)
		out.WriteByte('\n')
	}
}
