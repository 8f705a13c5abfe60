package main

import (
	"fmt"
	"strings"
)

// The dotenv format written by export and read by import:
//
//	# credvault-name: openai-prod
//	OPENAI_PROD='sk-…'
//	MULTI="line one\nline \"two\" costs \$5 \\ more"
//
// A value is single-quoted (taken literally) unless it holds a single quote,
// a newline or a carriage return; then it is double-quoted with \\ \" \$ \`
// \n \r escaped. A "# credvault-name:" comment gives the credential's name
// when it differs from the variable's. import also reads bare values
// (VALUE, trailing " #comment" removed), an "export " prefix, and in double
// quotes \t and literal newlines.

// envName maps a credential name to a variable name: letters are
// upper-cased, every character other than A-Z, 0-9 and _ becomes _, and a
// leading digit gets a _ in front.
func envName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(name) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		s = "_" + s
	}
	return s
}

func quoteDotenv(v string) string {
	if !strings.ContainsAny(v, "'\n\r") {
		return "'" + v + "'"
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`", "\n", `\n`, "\r", `\r`)
	return `"` + r.Replace(v) + `"`
}

// dotenvEntry is one assignment read from a dotenv file.
type dotenvEntry struct {
	Var, Name, Value string
	Line             int
}

// parseDotenv reads the format above.
func parseDotenv(s string) ([]dotenvEntry, error) {
	var out []dotenvEntry
	line := 1
	name := "" // from a "# credvault-name:" comment, for the next assignment
	i := 0
	for i < len(s) {
		// One logical line.
		j := i
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		if j >= len(s) {
			break
		}
		if s[j] == '\n' || s[j] == '\r' {
			if s[j] == '\n' {
				line++
			}
			i = j + 1
			continue
		}
		if s[j] == '#' {
			end := strings.IndexByte(s[j:], '\n')
			if end < 0 {
				end = len(s) - j
			}
			c := strings.TrimSpace(s[j+1 : j+end])
			if n, ok := strings.CutPrefix(c, "credvault-name:"); ok {
				name = strings.TrimSpace(n)
			}
			i = j + end
			continue
		}
		start := line
		rest := s[j:]
		rest = strings.TrimPrefix(rest, "export ")
		eq := strings.IndexByte(rest, '=')
		nl := strings.IndexByte(rest, '\n')
		if eq < 0 || (nl >= 0 && nl < eq) {
			return nil, fmt.Errorf("line %d: want VAR=value", start)
		}
		v := strings.TrimSpace(rest[:eq])
		if !envVarName.MatchString(v) {
			return nil, fmt.Errorf("line %d: %q is not a variable name", start, v)
		}
		k := len(s) - len(rest) + eq + 1 // index after '='
		for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
			k++
		}
		var val string
		switch {
		case k < len(s) && s[k] == '\'':
			end := strings.IndexByte(s[k+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated single quote", start)
			}
			val = s[k+1 : k+1+end]
			line += strings.Count(val, "\n")
			k = k + 1 + end + 1
		case k < len(s) && s[k] == '"':
			var b strings.Builder
			k++
			closed := false
			for k < len(s) {
				c := s[k]
				if c == '"' {
					closed = true
					k++
					break
				}
				if c == '\\' && k+1 < len(s) {
					k++
					switch e := s[k]; e {
					case 'n':
						b.WriteByte('\n')
					case 'r':
						b.WriteByte('\r')
					case 't':
						b.WriteByte('\t')
					case '\\', '"', '$', '`':
						b.WriteByte(e)
					default:
						b.WriteByte('\\')
						b.WriteByte(e)
					}
					k++
					continue
				}
				if c == '\n' {
					line++
				}
				b.WriteByte(c)
				k++
			}
			if !closed {
				return nil, fmt.Errorf("line %d: unterminated double quote", start)
			}
			val = b.String()
		default:
			end := strings.IndexByte(s[k:], '\n')
			if end < 0 {
				end = len(s) - k
			}
			val = strings.TrimRight(s[k:k+end], "\r")
			if h := strings.Index(val, " #"); h >= 0 {
				val = val[:h]
			}
			val = strings.TrimSpace(val)
			k += end
		}
		// Only blanks or a comment may follow a quoted value.
		for k < len(s) && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r') {
			k++
		}
		if k < len(s) && s[k] == '#' {
			for k < len(s) && s[k] != '\n' {
				k++
			}
		}
		if k < len(s) && s[k] != '\n' {
			return nil, fmt.Errorf("line %d: unexpected text after the value of %s", start, v)
		}
		n := name
		if n == "" {
			n = v
		}
		out = append(out, dotenvEntry{Var: v, Name: n, Value: val, Line: start})
		name = ""
		i = k
	}
	return out, nil
}
