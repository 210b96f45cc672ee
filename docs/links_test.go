// Package docs holds Vigil's user documentation. Its test checks that every
// relative link in the top-level docs resolves, so a moved file or renamed
// heading breaks the build instead of the reader's click.
package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	linkRE    = regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)\)`)
	inlineRE  = regexp.MustCompile("`[^`]*`")
	headingRE = regexp.MustCompile(`^#{1,6}\s+(.*)$`)
)

// docFiles are the documents whose links are checked, relative to the
// repository root.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md", "deploy/README.md"}
	more, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range more {
		files = append(files, filepath.Join("docs", filepath.Base(m)))
	}
	return files
}

// links returns the link targets of a markdown document, outside fenced
// code blocks and inline code.
func links(md string) []string {
	var out []string
	fenced := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		line = inlineRE.ReplaceAllString(line, "")
		for _, m := range linkRE.FindAllStringSubmatch(line, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// anchors returns the GitHub-style anchors of a document's headings.
func anchors(md string) map[string]bool {
	out := map[string]bool{}
	fenced := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		m := headingRE.FindStringSubmatch(line)
		if fenced || m == nil {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(m[1])) {
			switch {
			case r == ' ' || r == '-':
				b.WriteRune('-')
			case r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9') || r > 127:
				b.WriteRune(r)
			}
		}
		out[b.String()] = true
	}
	return out
}

func TestRelativeLinksResolve(t *testing.T) {
	root := ".."
	checked := 0
	for _, doc := range docFiles(t) {
		b, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, target := range links(string(b)) {
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			checked++
			file, frag, _ := strings.Cut(target, "#")
			path := filepath.Join(root, filepath.Dir(doc), file)
			if file == "" {
				path = filepath.Join(root, doc)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s: link %q: %v", doc, target, err)
				continue
			}
			if frag != "" && strings.HasSuffix(path, ".md") {
				md, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !anchors(string(md))[frag] {
					t.Errorf("%s: link %q: no heading #%s in %s", doc, target, frag, file)
				}
			}
		}
	}
	if checked < 20 {
		t.Errorf("checked only %d relative links; is the link pattern still right?", checked)
	}
}

func TestLinkParsing(t *testing.T) {
	md := "see [a](a.md) and [b](../b.md#sec-one) but not `[c](c.md)`\n```\n[d](d.md)\n```\n[e](https://x.io/e)\n# Sec One\n## The image\n"
	got := links(md)
	want := []string{"a.md", "../b.md#sec-one", "https://x.io/e"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("links = %q, want %q", got, want)
	}
	a := anchors(md)
	if !a["sec-one"] || !a["the-image"] || len(a) != 2 {
		t.Errorf("anchors = %v", a)
	}
}
