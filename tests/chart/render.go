// render renders a Helm chart the way `helm template` does, with no helm binary: Go's
// text/template plus sprig (the engine helm uses), helm's built-in objects (.Values,
// .Release, .Chart, .Capabilities, .Template, .Files) and its extra functions (include,
// tpl, required, toYaml, fromYaml, toJson, fromJson, lookup).
//
// Build offline from Debian's Go packages:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o render tests/chart/render.go
//
// Usage:
//
//	render -chart charts/hotplug-operator [-f override.yaml ...] [-json] [-notes] [-strict]
//	render -chart charts/hotplug-operator [-f override.yaml ...] -values
//	render -yaml-to-json FILE... (or - for stdin)
//
// It prints a YAML stream of the rendered objects (or, with -json, one JSON document
// {"objects": [{"source": ..., "object": ...}], "notes": "..."}) and exits non-zero with
// the template's message when rendering fails (a `fail` or `required` in the chart).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v2"
)

// ---- values ----

// jsonCompatible turns what yaml.v2 decodes (map[interface{}]interface{}) into what
// sigs.k8s.io/yaml gives helm: map[string]interface{}, []interface{}, float64 numbers.
func jsonCompatible(in interface{}) (interface{}, error) {
	var convert func(interface{}) (interface{}, error)
	convert = func(v interface{}) (interface{}, error) {
		switch typed := v.(type) {
		case map[interface{}]interface{}:
			out := make(map[string]interface{}, len(typed))
			for key, value := range typed {
				converted, err := convert(value)
				if err != nil {
					return nil, err
				}
				out[fmt.Sprint(key)] = converted
			}
			return out, nil
		case []interface{}:
			out := make([]interface{}, len(typed))
			for i, value := range typed {
				converted, err := convert(value)
				if err != nil {
					return nil, err
				}
				out[i] = converted
			}
			return out, nil
		default:
			return v, nil
		}
	}
	converted, err := convert(in)
	if err != nil {
		return nil, err
	}
	// A JSON round trip gives numbers the float64 type helm's values have.
	encoded, err := json.Marshal(converted)
	if err != nil {
		return nil, err
	}
	var out interface{}
	err = json.Unmarshal(encoded, &out)
	return out, err
}

func parseYAML(text []byte) (interface{}, error) {
	var raw interface{}
	if err := yaml.Unmarshal(text, &raw); err != nil {
		return nil, err
	}
	return jsonCompatible(raw)
}

func readValues(file string) (map[string]interface{}, error) {
	text, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	parsed, err := parseYAML(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if parsed == nil {
		return map[string]interface{}{}, nil
	}
	values, ok := parsed.(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("%s: top level is not a mapping", file)
	}
	return values, nil
}

// coalesce merges override into base the way helm merges -f files into values.yaml:
// maps merge key by key, anything else replaces, and an explicit null deletes the key.
func coalesce(base, override map[string]interface{}) map[string]interface{} {
	for key, value := range override {
		if value == nil {
			delete(base, key)
			continue
		}
		overrideMap, overrideIsMap := value.(map[string]interface{})
		baseMap, baseIsMap := base[key].(map[string]interface{})
		if overrideIsMap && baseIsMap {
			base[key] = coalesce(baseMap, overrideMap)
		} else {
			base[key] = value
		}
	}
	return base
}

// ---- built-in objects ----

// Files is .Files: every chart file outside templates/ and the chart's own metadata.
type Files map[string][]byte

func (f Files) GetBytes(name string) []byte { return f[name] }
func (f Files) Get(name string) string      { return string(f[name]) }

// Glob returns the files whose path matches pattern (path.Match syntax).
func (f Files) Glob(pattern string) Files {
	out := Files{}
	for name, content := range f {
		if matched, _ := path.Match(pattern, name); matched {
			out[name] = content
		}
	}
	return out
}

// AsConfig renders the files as ConfigMap data: base name -> content.
func (f Files) AsConfig() string {
	data := map[string]string{}
	for name, content := range f {
		data[path.Base(name)] = string(content)
	}
	text, _ := yaml.Marshal(data)
	return strings.TrimSuffix(string(text), "\n")
}

func (f Files) Lines(name string) []string {
	return strings.Split(strings.TrimSuffix(string(f[name]), "\n"), "\n")
}

// APIVersions is .Capabilities.APIVersions.
type APIVersions []string

func (a APIVersions) Has(version string) bool {
	for _, known := range a {
		if known == version {
			return true
		}
	}
	return false
}

type KubeVersion struct {
	Version, Major, Minor string
}

func (k KubeVersion) String() string     { return k.Version }
func (k KubeVersion) GitVersion() string { return k.Version }

type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions APIVersions
}

var defaultAPIVersions = []string{
	"v1", "apps/v1", "batch/v1", "policy/v1", "rbac.authorization.k8s.io/v1",
	"coordination.k8s.io/v1", "apiextensions.k8s.io/v1", "networking.k8s.io/v1",
}

// ---- functions helm adds to sprig ----

func toYAML(v interface{}) string {
	// helm marshals through JSON (sigs.k8s.io/yaml): JSON field rules, sorted keys.
	encoded, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	var generic interface{}
	if err := yaml.Unmarshal(encoded, &generic); err != nil {
		return ""
	}
	text, err := yaml.Marshal(generic)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(text), "\n")
}

func fromYAML(text string) map[string]interface{} {
	parsed, err := parseYAML([]byte(text))
	if err != nil {
		return map[string]interface{}{"Error": err.Error()}
	}
	if m, ok := parsed.(map[string]interface{}); ok {
		return m
	}
	return map[string]interface{}{}
}

func toJSON(v interface{}) string {
	encoded, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(encoded)
}

func fromJSON(text string) map[string]interface{} {
	out := map[string]interface{}{}
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		out["Error"] = err.Error()
	}
	return out
}

func required(message string, value interface{}) (interface{}, error) {
	if value == nil {
		return nil, errors.New(message)
	}
	if s, ok := value.(string); ok && s == "" {
		return nil, errors.New(message)
	}
	return value, nil
}

// ---- the engine ----

type renderer struct {
	root      *template.Template
	includes  int
	chartName string
}

const maxIncludeDepth = 1000

func (r *renderer) funcMap() template.FuncMap {
	funcs := sprig.TxtFuncMap()
	// helm removes these: a chart must render the same on every machine.
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = fromYAML
	funcs["toJson"] = toJSON
	funcs["fromJson"] = fromJSON
	funcs["required"] = required
	// No cluster to ask: like `helm template`, lookup finds nothing.
	funcs["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		r.includes++
		defer func() { r.includes-- }()
		if r.includes > maxIncludeDepth {
			return "", fmt.Errorf("include %q: nested too deeply", name)
		}
		var out bytes.Buffer
		if err := r.root.ExecuteTemplate(&out, name, data); err != nil {
			return "", err
		}
		return out.String(), nil
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		// A clone, so the string can use every define of the chart without adding its own.
		clone, err := r.root.Clone()
		if err != nil {
			return "", err
		}
		parsed, err := clone.New(r.chartName + "/tpl").Parse(text)
		if err != nil {
			return "", fmt.Errorf("tpl: %w", err)
		}
		var out bytes.Buffer
		if err := parsed.Execute(&out, data); err != nil {
			return "", fmt.Errorf("tpl: %w", err)
		}
		return strings.ReplaceAll(out.String(), "<no value>", ""), nil
	}
	return funcs
}

type renderedObject struct {
	Source string      `json:"source"`
	Object interface{} `json:"object"`
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

func main() {
	chartDir := flag.String("chart", "charts/hotplug-operator", "chart directory")
	releaseName := flag.String("name", "hotplug-operator", "release name")
	namespace := flag.String("namespace", "hotplug-system", "release namespace")
	kubeVersion := flag.String("kube-version", "v1.32.0", "Kubernetes version for .Capabilities")
	asJSON := flag.Bool("json", false, "print one JSON document instead of a YAML stream")
	notesOnly := flag.Bool("notes", false, "print only the rendered NOTES.txt")
	includeCRDs := flag.Bool("include-crds", false, "also print the chart's crds/ (as helm template --include-crds)")
	strict := flag.Bool("strict", false, "a reference to a missing value is an error (as helm lint --strict)")
	printValues := flag.Bool("values", false, "print the merged values as JSON, render nothing")
	yamlToJSON := flag.Bool("yaml-to-json", false, "print the YAML documents of the named files as one JSON array")
	var overrides, extraAPIs stringList
	flag.Var(&overrides, "f", "values file merged over values.yaml (repeatable)")
	flag.Var(&extraAPIs, "api-versions", "extra API version for .Capabilities.APIVersions (repeatable)")
	flag.Parse()

	if *yamlToJSON {
		if err := convertFiles(flag.Args()); err != nil {
			fmt.Fprintln(os.Stderr, "render:", err)
			os.Exit(1)
		}
		return
	}
	if *printValues {
		values, err := mergedValues(*chartDir, overrides)
		if err == nil {
			err = printJSON(values)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "render:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*chartDir, *releaseName, *namespace, *kubeVersion, overrides, extraAPIs,
		*asJSON, *notesOnly, *includeCRDs, *strict); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(chartDir, releaseName, namespace, kubeVersion string, overrides, extraAPIs []string,
	asJSON, notesOnly, includeCRDs, strict bool) error {
	chartMeta, err := readValues(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	values, err := mergedValues(chartDir, overrides)
	if err != nil {
		return err
	}
	chartName := fmt.Sprint(chartMeta["name"])
	chart := map[string]interface{}{}
	for key, value := range chartMeta {
		// helm exposes Chart.yaml's fields capitalised: .Chart.AppVersion, .Chart.Name.
		chart[strings.ToUpper(key[:1])+key[1:]] = value
	}

	templates := map[string]string{}
	files := Files{}
	err = filepath.Walk(chartDir, func(file string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(chartDir, file)
		rel = filepath.ToSlash(rel)
		content, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			templates[chartName+"/"+rel] = string(content)
		case rel == "Chart.yaml" || rel == "values.yaml" || rel == "values.schema.json" || rel == ".helmignore":
		default:
			files[rel] = content
		}
		return nil
	})
	if err != nil {
		return err
	}

	major, minor := "1", "32"
	if parts := strings.SplitN(strings.TrimPrefix(kubeVersion, "v"), ".", 3); len(parts) >= 2 {
		major, minor = parts[0], parts[1]
	}
	capabilities := Capabilities{
		KubeVersion: KubeVersion{Version: kubeVersion, Major: major, Minor: minor},
		APIVersions: append(APIVersions(defaultAPIVersions), extraAPIs...),
	}
	release := map[string]interface{}{
		"Name": releaseName, "Namespace": namespace, "Service": "Helm",
		"IsInstall": true, "IsUpgrade": false, "Revision": 1,
	}

	r := &renderer{chartName: chartName}
	missingKey := "missingkey=zero"
	if strict {
		missingKey = "missingkey=error"
	}
	r.root = template.New("gotpl").Option(missingKey).Funcs(r.funcMap())
	names := make([]string, 0, len(templates))
	for name := range templates {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, err := r.root.New(name).Parse(templates[name]); err != nil {
			return fmt.Errorf("parse %s: %w", name, err)
		}
	}

	var objects []renderedObject
	notes := ""
	for _, name := range names {
		base := path.Base(name)
		if strings.HasPrefix(base, "_") {
			continue // partials: defines only
		}
		scope := map[string]interface{}{
			"Values": values, "Release": release, "Chart": chart,
			"Capabilities": capabilities, "Files": files,
			"Template": map[string]interface{}{"Name": name, "BasePath": chartName + "/templates"},
		}
		var out bytes.Buffer
		if err := r.root.ExecuteTemplate(&out, name, scope); err != nil {
			return err
		}
		rendered := strings.ReplaceAll(out.String(), "<no value>", "")
		if base == "NOTES.txt" {
			notes = rendered
			continue
		}
		for _, document := range documentSeparator.Split(rendered, -1) {
			parsed, err := parseYAML([]byte(document))
			if err != nil {
				return fmt.Errorf("%s renders invalid YAML: %w\n%s", name, err, document)
			}
			if parsed == nil {
				continue // empty, or comments only
			}
			objects = append(objects, renderedObject{Source: name, Object: parsed})
		}
	}
	if includeCRDs {
		for _, name := range sortedKeys(files) {
			if !strings.HasPrefix(name, "crds/") {
				continue
			}
			for _, document := range documentSeparator.Split(string(files[name]), -1) {
				parsed, err := parseYAML([]byte(document))
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if parsed != nil {
					objects = append([]renderedObject{{Source: chartName + "/" + name, Object: parsed}}, objects...)
				}
			}
		}
	}

	if notesOnly {
		fmt.Print(notes)
		return nil
	}
	if asJSON {
		return printJSON(map[string]interface{}{"objects": objects, "notes": notes})
	}
	for _, object := range objects {
		fmt.Printf("---\n# Source: %s\n%s\n", object.Source, toYAML(object.Object))
	}
	return nil
}

func sortedKeys(f Files) []string {
	keys := make([]string, 0, len(f))
	for key := range f {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return keys
}

// mergedValues is values.yaml with each override file merged over it, in order.
func mergedValues(chartDir string, overrides []string) (map[string]interface{}, error) {
	values, err := readValues(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return nil, err
	}
	for _, file := range overrides {
		override, err := readValues(file)
		if err != nil {
			return nil, err
		}
		values = coalesce(values, override)
	}
	return values, nil
}

func printJSON(v interface{}) error {
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetIndent("", "  ")
	return encoder.Encode(v)
}

// convertFiles prints every non-empty YAML document of the files as one JSON array, so
// that tests in languages without a YAML parser can read manifests.
func convertFiles(names []string) error {
	documents := []interface{}{}
	for _, name := range names {
		var text []byte
		var err error
		if name == "-" {
			text, err = io.ReadAll(os.Stdin)
		} else {
			text, err = os.ReadFile(name)
		}
		if err != nil {
			return err
		}
		for _, document := range documentSeparator.Split(string(text), -1) {
			parsed, err := parseYAML([]byte(document))
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if parsed != nil {
				documents = append(documents, parsed)
			}
		}
	}
	return printJSON(documents)
}
