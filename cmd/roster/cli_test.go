package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/roster-io/roster/internal/rostertest"

	"github.com/stretchr/testify/require"
)

// cli runs the roster binary with args, without the ROSTER_ environment
// of the test, and returns its stdout, stderr and exit code.
func cli(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = cleanEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("roster %q: %v", args, err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// cleanEnv is the test's environment without ROSTER_ variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ROSTER_") {
			env = append(env, kv)
		}
	}
	return env
}

// commandPaths lists every command and subcommand as argument lists:
// [join], [session create], ...
func commandPaths() [][]string {
	var out [][]string
	for _, c := range commands() {
		out = append(out, []string{c.name})
		for _, s := range c.subs {
			out = append(out, []string{c.name, s})
		}
	}
	return out
}

// TestCommandsFromUsage: the usage text, which did-you-mean and completion
// read, lists every command the dispatcher knows, with its subcommands.
func TestCommandsFromUsage(t *testing.T) {
	names := commandNames()
	for _, want := range []string{"help", "serve", "join", "leave", "members", "groups", "watch", "nodes", "status", "session", "wait", "keyring", "completion"} {
		require.Contains(t, names, want)
	}
	for _, c := range commands() {
		require.NotEmpty(t, c.summary, "%s has a summary", c.name)
		err := run([]string{c.name, "--help"}, io.Discard, io.Discard)
		if err != nil {
			require.NotContains(t, err.Error(), "unknown command", "%s is dispatched", c.name)
		}
	}
	require.Equal(t, []string{"create", "keepalive", "close", "list", "get"}, subcommands("session"))
	require.Equal(t, []string{"list", "install", "use", "remove"}, subcommands("keyring"))
	require.Equal(t, []string{"bash", "zsh", "fish"}, subcommands("completion"))
	require.Nil(t, subcommands("join"))
}

// TestHelpOnEveryCommand: -h, --help and roster help CMD print the
// command's help on stdout and exit 0, for every command and subcommand.
func TestHelpOnEveryCommand(t *testing.T) {
	for _, path := range append(commandPaths(), []string{"help"}) {
		name := strings.Join(path, " ")
		if path[0] == "version" {
			_, _, code := cli(t, "version", "--help")
			require.Equal(t, 0, code, "version --help")
			continue
		}
		var helps []string
		for _, args := range [][]string{append(slices.Clone(path), "-h"), append(slices.Clone(path), "--help"), append([]string{"help"}, path...)} {
			stdout, stderr, code := cli(t, args...)
			require.Equal(t, 0, code, "roster %q: stderr %s", args, stderr)
			require.Empty(t, stderr, "roster %q", args)
			helps = append(helps, stdout)
			if name == "help" {
				require.Equal(t, usage, stdout, "roster %q", args)
				continue
			}
			require.Contains(t, strings.ToLower(stdout), "usage: roster "+path[0], "roster %q", args)
			for _, w := range path {
				require.Contains(t, stdout, w, "roster %q", args)
			}
		}
		require.Equal(t, helps[0], helps[1], "%s: -h and --help", name)
		require.Equal(t, helps[0], helps[2], "%s: --help and roster help", name)
	}
	stdout, _, code := cli(t, "--help")
	require.Equal(t, 0, code)
	for _, c := range commands() {
		require.Contains(t, stdout, "roster "+c.name)
	}
}

// TestBadFlagIsOneLine: a bad flag or flag value is one line on stderr
// naming the command, with where to find the flags (and a guess for a
// mistyped one), exit 2, nothing on stdout.
func TestBadFlagIsOneLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"join", "--bogus", "g", "i"}, "roster: join: flag provided but not defined: -bogus (see roster join --help)"},
		{[]string{"join", "g", "i", "--adr", "x"}, `roster: join: flag provided but not defined: -adr; did you mean "--addr"? (see roster join --help)`},
		{[]string{"members", "--timeout", "soon", "g"}, `roster: members: invalid value "soon" for flag -timeout: parse error (see roster members --help)`},
		{[]string{"serve", "--nmae", "x"}, `roster: serve: flag provided but not defined: -nmae; did you mean "--name"? (see roster serve --help)`},
		{[]string{"session", "create", "--ttl"}, "roster: session create: flag needs an argument: -ttl (see roster session create --help)"},
		{[]string{"status", "--jsn"}, `roster: status: flag provided but not defined: -jsn; did you mean "--json"? (see roster status --help)`},
		{[]string{"wait", "--ready", "--interval", "x"}, `roster: wait: invalid value "x" for flag -interval: parse error (see roster wait --help)`},
		{[]string{"keyring", "list", "--bogus"}, "roster: keyring list: flag provided but not defined: -bogus (see roster keyring list --help)"},
		{[]string{"watch", "--x\x1b[2J"}, `roster: watch: flag provided but not defined: -x\x1b[2J (see roster watch --help)`},
		{[]string{"groups", "---x"}, "roster: groups: bad flag syntax: ---x (see roster groups --help)"},
	} {
		stdout, stderr, code := cli(t, tc.args...)
		require.Equal(t, 2, code, "%q", tc.args)
		require.Empty(t, stdout, "%q", tc.args)
		require.Equal(t, tc.want+"\n", stderr, "%q", tc.args)
	}
}

// TestDidYouMean: a mistyped command or subcommand is one line with the
// closest names; nothing close, no guess.
func TestDidYouMean(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"jion"}, `unknown command "jion"; did you mean "join"?`},
		{[]string{"stauts"}, `unknown command "stauts"; did you mean "status"?`},
		{[]string{"memebrs", "g"}, `unknown command "memebrs"; did you mean "members"?`},
		{[]string{"mem"}, `unknown command "mem"; did you mean "members"?`},
		{[]string{"node"}, `unknown command "node"; did you mean "nodes"?`},
		{[]string{"se"}, `unknown command "se"; did you mean "serve" or "session"?`},
		{[]string{"xyzzy"}, `unknown command "xyzzy" (roster --help lists them)`},
		{[]string{"session", "lsit"}, `unknown session command "lsit"; did you mean "list"?`},
		{[]string{"session", "ls"}, `unknown session command "ls"; did you mean "list"?`},
		{[]string{"keyring", "instal"}, `unknown keyring command "instal"; did you mean "install"?`},
		{[]string{"completion", "bahs"}, `unknown completion command "bahs"; did you mean "bash"?`},
	} {
		err := run(tc.args, io.Discard, io.Discard)
		var ee *exitError
		require.ErrorAs(t, err, &ee, "%q", tc.args)
		require.Equal(t, 2, ee.code)
		require.Contains(t, err.Error(), tc.want)
		require.NotContains(t, err.Error(), "\n")
	}
	_, stderr, code := cli(t, "jion", "g", "i")
	require.Equal(t, 2, code)
	require.Equal(t, "roster: unknown command \"jion\"; did you mean \"join\"? (roster --help lists them)\n", stderr)
}

// TestAddrWithoutScheme: --addr host:port means http://, or https:// with
// a TLS flag; a URL is kept; plain http:// with a TLS flag is refused.
func TestAddrWithoutScheme(t *testing.T) {
	for _, tc := range []struct {
		o    clientOptions
		want string
	}{
		{clientOptions{addr: "127.0.0.1:8080"}, "http://127.0.0.1:8080"},
		{clientOptions{addr: "localhost:8080"}, "http://localhost:8080"},
		{clientOptions{addr: "[::1]:8080"}, "http://[::1]:8080"},
		{clientOptions{addr: "roster.example:443", tlsCA: "ca.pem"}, "https://roster.example:443"},
		{clientOptions{addr: "roster.example:443", tlsCert: "c.pem", tlsKey: "k.pem"}, "https://roster.example:443"},
		{clientOptions{addr: "http://127.0.0.1:8080/"}, "http://127.0.0.1:8080/"},
		{clientOptions{addr: "https://127.0.0.1:8443"}, "https://127.0.0.1:8443"},
	} {
		got, err := tc.o.baseURL()
		require.NoError(t, err, tc.o.addr)
		require.Equal(t, tc.want, got)
	}
	_, err := (&clientOptions{addr: "http://127.0.0.1:8080", tlsCA: "ca.pem"}).baseURL()
	require.ErrorContains(t, err, "plain HTTP but a --tls-* flag is given")
	_, err = (&clientOptions{}).baseURL()
	require.ErrorContains(t, err, "--addr is empty")

	// Through the commands: the node's address without a scheme is
	// reached over HTTP (nothing listens: the error names the URL).
	port := rostertest.FreePort(t)
	_, stderr, code := cli(t, "nodes", "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--timeout", "1s")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, fmt.Sprintf("http://127.0.0.1:%d/v1/nodes", port))
	_, stderr, code = cli(t, "nodes", "--addr", "127.0.0.1:1", "--tls-cert", "c.pem")
	require.Equal(t, 2, code)
	require.Equal(t, "roster: --tls-cert and --tls-key must be given together\n", stderr)
}

// TestEscaping: names and values print as they are when printable, else
// quoted with their control characters escaped; error lines never break.
func TestEscaping(t *testing.T) {
	for in, want := range map[string]string{
		"room:42":           "room:42",
		"conn 1/é✓":         "conn 1/é✓",
		"a\x1b[31mb":        `"a\x1b[31mb"`,
		"line\nforged":      `"line\nforged"`,
		"evil\u202etxt.exe": `"evil\u202etxt.exe"`,
		"zero\u200bwidth":   `"zero\u200bwidth"`,
		"bad\xffutf8":       `"bad\xffutf8"`,
		"tab\there":         `"tab\there"`,
		`"quoted"`:          `"\"quoted\""`,
		"":                  "",
	} {
		require.Equal(t, want, esc(in), "%q", in)
	}
	require.Equal(t, `x \x1b[2J y\nz \u202e`, errorText(errors.New("x \x1b[2J y\nz \u202e")))
	require.Equal(t, "usage: a\n       b \\x1b", errorText(usageErr("usage: a\n       b \x1b")), "usage errors keep their lines")
	require.Equal(t, "k="+`"v\n2"`+" z=1", metaString(map[string]string{"z": "1", "k": "v\n2"}, ""))
}

// TestCompletionScripts: each script is valid for its shell, names every
// command and subcommand, and completes commands, subcommands, flags and
// file arguments when run (bash always; zsh and fish where installed).
func TestCompletionScripts(t *testing.T) {
	scripts := map[string]string{}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		stdout, stderr, code := cli(t, "completion", sh)
		require.Equal(t, 0, code, stderr)
		for _, c := range commands() {
			require.Contains(t, stdout, c.name, "%s names %s", sh, c.name)
			for _, s := range c.subs {
				require.Contains(t, stdout, s, "%s names %s %s", sh, c.name, s)
			}
		}
		require.Contains(t, stdout, "tls-ca", "%s completes flags", sh)
		f := filepath.Join(t.TempDir(), "roster."+sh)
		require.NoError(t, os.WriteFile(f, []byte(stdout), 0o600))
		scripts[sh] = f
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), nil, 0o600))
	cases := []struct {
		line string // the words typed, the last one being completed
		want []string
	}{
		{"roster jo", []string{"join"}},
		{"roster st", []string{"status"}},
		{"roster session ", []string{"create", "keepalive", "close", "list", "get"}},
		{"roster completion ", []string{"bash", "zsh", "fish"}},
		{"roster help ses", []string{"session"}},
		{"roster session create --t", []string{"--timeout", "--tls-ca", "--tls-cert", "--tls-key", "--token", "--ttl"}},
		{"roster watch --la", []string{"--last-event-id"}},
		{"roster status --tls-ca " + dir + "/c", []string{dir + "/ca.pem"}},
	}
	shell := func(name string, script string) string {
		path, err := exec.LookPath(name)
		if err != nil {
			t.Logf("%s not installed: only its script's content was checked", name)
			return ""
		}
		out, err := exec.Command(path, "-n", script).CombinedOutput()
		require.NoError(t, err, "%s -n: %s", name, out)
		return path
	}
	complete := func(path string, script string, line string) []string {
		out, err := exec.Command(path, "-c", script, "roster-completion-test", line).CombinedOutput()
		require.NoError(t, err, "%s", out)
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" {
				got = append(got, strings.SplitN(l, "\t", 2)[0]) // fish: word<TAB>description
			}
		}
		slices.Sort(got)
		return got
	}
	check := func(sh, path, driver string) {
		for _, tc := range cases {
			want := slices.Clone(tc.want)
			slices.Sort(want)
			require.Equal(t, want, complete(path, driver, tc.line), "%s: %q", sh, tc.line)
		}
	}
	if path := shell("bash", scripts["bash"]); path != "" {
		check("bash", path, `source "`+scripts["bash"]+`"
read -ra COMP_WORDS <<< "$1"; [[ $1 == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); _roster; printf '%s\n' "${COMPREPLY[@]}"`)
	}
	if path := shell("zsh", scripts["zsh"]); path != "" {
		// Outside a completion widget: the completion system's functions
		// print what they are given.
		check("zsh", path, `compdef() { : }
_describe() { local n=${@[-1]}; local -a arr; arr=("${(@P)n}"); print -rl -- ${arr[@]%%:*} }
compadd() { print -rl -- ${(P)2} }
_files() { print -rl -- ${cur}*(N) }
_message() { : }
source "`+scripts["zsh"]+`"
words=(${(z)1}); [[ $1 == *" " ]] && words+=("")
CURRENT=${#words}; _roster | grep -- "^${words[-1]}"`)
	}
	if path := shell("fish", scripts["fish"]); path != "" {
		check("fish", path, `source "`+scripts["fish"]+`"; complete -C "$argv[-1]"`)
	}
}

// TestREADMERecipeWaits: the README's 3-node recipe waits for every node
// with roster wait --ready before it uses the cluster.
func TestREADMERecipeWaits(t *testing.T) {
	recipe := readmeRecipe(t)
	waitAt := strings.Index(recipe, "roster wait --ready")
	require.Positive(t, waitAt, "the recipe waits:\n%s", recipe)
	require.Contains(t, recipe, "for p in 8081 8082 8083; do ./roster wait --ready")
	require.Greater(t, strings.Index(recipe, "./roster nodes"), waitAt, "nodes runs after the wait")
	require.Greater(t, strings.Index(recipe, "./roster status"), waitAt, "status runs after the wait")
}

// readmeRecipe returns the shell block of the README's "A 3-node cluster
// on one machine" section.
func readmeRecipe(t *testing.T) string {
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(b), "## A 3-node cluster on one machine")
	require.True(t, ok)
	_, block, ok := strings.Cut(section, "```sh\n")
	require.True(t, ok)
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok)
	return block
}
