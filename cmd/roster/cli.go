package main

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/agnivade/levenshtein"
)

// command is a top-level command as the usage text lists it.
type command struct {
	name, summary string
	subs          []string // create|keepalive|close, for commands that take one
}

// commands parses the usage text: each "  roster NAME [A|B|C] ...  summary"
// line names a command, its subcommands and what it does. The usage is the
// one list of commands; did-you-mean and completion read it from here.
func commands() []command {
	var out []command
	for _, line := range strings.Split(usage, "\n") {
		rest, ok := strings.CutPrefix(line, "  roster ")
		if !ok {
			continue
		}
		left, summary, _ := strings.Cut(rest, "  ")
		fields := strings.Fields(left)
		c := command{name: fields[0], summary: strings.TrimSpace(summary)}
		if len(fields) > 1 && strings.Contains(fields[1], "|") && !strings.HasPrefix(fields[1], "-") {
			c.subs = strings.Split(fields[1], "|")
		}
		out = append(out, c)
	}
	return out
}

// commandNames lists the commands, "help" included.
func commandNames() []string { return namesOf(commands()) }

// namesOf lists the names of cmds, "help" first.
func namesOf(cmds []command) []string {
	names := []string{"help"}
	for _, c := range cmds {
		names = append(names, c.name)
	}
	return names
}

// subcommands lists the subcommands of cmd (none for most).
func subcommands(cmd string) []string {
	for _, c := range commands() {
		if c.name == cmd {
			return c.subs
		}
	}
	return nil
}

// suggest returns `; did you mean "x"?` for the candidates word is a
// prefix of, or else for the candidates closest to word within an edit
// distance of a third of its length (at least 2); "" if none is close.
func suggest(word string, candidates []string) string {
	var best []string
	if word != "" {
		for _, c := range candidates {
			if strings.HasPrefix(c, word) {
				best = append(best, c)
			}
		}
	}
	if best == nil {
		limit := max(2, utf8.RuneCountInString(word)/3)
		bestD := limit + 1
		for _, c := range candidates {
			switch d := levenshtein.ComputeDistance(strings.ToLower(word), c); {
			case d < bestD:
				best, bestD = []string{c}, d
			case d == bestD && d <= limit:
				best = append(best, c)
			}
		}
	}
	if best == nil {
		return ""
	}
	quoted := make([]string, len(best))
	for i, b := range best {
		quoted[i] = strconv.Quote(b)
	}
	return "; did you mean " + strings.Join(quoted, " or ") + "?"
}

// unknownCommand is the one-line error for a mistyped command.
func unknownCommand(cmd string) error {
	return usageErr("unknown command %q%s (roster --help lists them)", cmd, suggest(cmd, commandNames()))
}

// unknownSub is the one-line error for a mistyped subcommand of cmd.
func unknownSub(cmd, sub string) error {
	subs := subcommands(cmd)
	return usageErr("unknown %s command %q%s (want %s; see roster %s --help)", cmd, sub, suggest(sub, subs), strings.Join(subs, ", "), cmd)
}

// flagError turns a flag package error into one line naming the command,
// with a suggestion for a mistyped flag and where to find the flags.
func flagError(fs *flag.FlagSet, err error) error {
	msg := escapeText(err.Error(), false)
	hint := ""
	if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: "); ok {
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		if hint = suggest(strings.TrimLeft(name, "-"), names); hint != "" {
			hint = strings.Replace(hint, `"`, `"--`, 1) // --addr, not addr
			hint = strings.ReplaceAll(hint, ` or "`, ` or "--`)
		}
	}
	return &exitError{2, fmt.Errorf("%s: %s%s (see roster %s --help)", fs.Name(), msg, hint, fs.Name())}
}

// printable reports whether s can be printed as it is: valid UTF-8 of
// printable runes (unicode.IsPrint: letters, marks, numbers, punctuation,
// symbols and the ASCII space), not starting with a quote, which would
// make it look like an escaped value.
func printable(s string) bool {
	if strings.HasPrefix(s, `"`) {
		return false
	}
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return false
			}
		}
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// esc returns a name or value fit for a terminal: as it is if printable,
// else quoted and escaped as Go does (strconv.Quote), so that control
// characters (an ESC starting a terminal sequence, a newline forging a
// line, a right-to-left override) are shown, never obeyed.
func esc(s string) string {
	if printable(s) {
		return s
	}
	return strconv.Quote(s)
}

// escapeText escapes the non-printable runes of a free text (an error
// message, which may carry what a node or the network sent) one by one,
// as \x1b, \u202e, \n; newlines are kept with keepNewlines.
func escapeText(s string, keepNewlines bool) string {
	if printable(strings.TrimPrefix(s, `"`)) && !strings.Contains(s, "\n") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n' && keepNewlines, unicode.IsPrint(r):
			b.WriteString(s[i : i+size])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// errorText is the text of the error line roster exits with: its own
// usage messages may span lines; nothing else may (an error can quote a
// node's answer).
func errorText(err error) string {
	var ee *exitError
	return escapeText(err.Error(), errors.As(err, &ee) && ee.code == 2)
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return slices.Contains([]string{"-h", "-help", "--help", "--h", "help"}, arg)
}
