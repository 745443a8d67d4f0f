package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/roster-io/roster/registry"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// exportedMetrics describes what a server with a data directory exports:
// every series name a query may use (histograms and summaries with their
// _bucket, _sum and _count series), each with its label names.
func exportedMetrics(t *testing.T) map[string]map[string]bool {
	t.Helper()
	cfg := registry.LocalConfig("dash")
	cfg.Scopes = []string{"default"}
	cfg.DataDir = t.TempDir()
	reg, err := registry.Open(context.Background(), cfg)
	require.NoError(t, err)
	defer func() { require.NoError(t, reg.Close(context.Background())) }()
	s, err := New(reg, DefaultConfig())
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Shutdown(context.Background())) }()
	// One request, so that the request histogram has a series to gather.
	s.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/nodes", nil))

	descs := make(chan *prometheus.Desc)
	go func() {
		s.metrics.reg.Describe(descs)
		close(descs)
	}()
	nameRe := regexp.MustCompile(`fqName: "([^"]+)"`)
	labelsRe := regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
	out := map[string]map[string]bool{}
	for d := range descs {
		str := d.String()
		name := nameRe.FindStringSubmatch(str)
		require.NotNil(t, name, str)
		labels := map[string]bool{}
		if m := labelsRe.FindStringSubmatch(str); m != nil && m[1] != "" {
			for _, l := range strings.Split(m[1], ",") {
				labels[strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")")] = true
			}
		}
		out[name[1]] = labels
	}
	fams, err := s.metrics.reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetType() != dto.MetricType_HISTOGRAM && f.GetType() != dto.MetricType_SUMMARY {
			continue
		}
		base := out[f.GetName()]
		require.NotNil(t, base, f.GetName())
		for _, suffix := range []string{"_sum", "_count", "_bucket"} {
			labels := map[string]bool{}
			for l := range base {
				labels[l] = true
			}
			if suffix == "_bucket" {
				if f.GetType() != dto.MetricType_HISTOGRAM {
					continue
				}
				labels["le"] = true
			}
			out[f.GetName()+suffix] = labels
		}
		if f.GetType() == dto.MetricType_SUMMARY {
			out[f.GetName()]["quantile"] = true
		}
	}
	require.Contains(t, out, "roster_storage_fsync_duration_seconds_bucket")
	require.Contains(t, out, "roster_http_request_duration_seconds_bucket")
	return out
}

// targetLabels are the labels Prometheus adds to every series: job and
// instance, and those deploy/prometheus/prometheus.yml relabels in.
var targetLabels = map[string]bool{"job": true, "instance": true, "namespace": true, "pod": true}

// promqlFunctions are the functions and aggregations a query may call.
var promqlFunctions = map[string]bool{
	"sum": true, "max": true, "min": true, "avg": true, "count": true, "topk": true, "bottomk": true,
	"rate": true, "irate": true, "increase": true, "delta": true, "deriv": true, "histogram_quantile": true,
	"clamp_min": true, "clamp_max": true, "abs": true, "sort": true, "sort_desc": true, "max_over_time": true,
	"min_over_time": true, "avg_over_time": true, "label_values": true,
}

// promqlKeywords are the words of PromQL that are neither functions nor
// metric names.
var promqlKeywords = map[string]bool{
	"by": true, "without": true, "and": true, "or": true, "unless": true, "bool": true,
	"on": true, "ignoring": true, "group_left": true, "group_right": true, "offset": true,
}

var (
	labelValuesRe = regexp.MustCompile(`^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)
	stringRe      = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	selectorRe    = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}`)
	matcherRe     = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*""\s*$`)
	groupingRe    = regexp.MustCompile(`\b(by|without)\s*\(([^)]*)\)`)
	bracketRe     = regexp.MustCompile(`\[[^\]]*\]|\{[^}]*\}`)
	numberRe      = regexp.MustCompile(`\b\d+(\.\d+)?([eE][+-]?\d+)?\b`)
	tokenRe       = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
)

// checkQuery checks that a PromQL query (or a Grafana label_values query)
// names only exported metrics, filters them only on labels they carry,
// and groups only on labels some of its metrics carry. It returns the
// metric names used.
func checkQuery(expr string, exported map[string]map[string]bool) ([]string, error) {
	if m := labelValuesRe.FindStringSubmatch(strings.TrimSpace(expr)); m != nil {
		// Grafana's label_values(selector, label): the label must be one
		// the selector's metrics carry.
		names, err := checkQuery(m[1], exported)
		if err != nil {
			return nil, err
		}
		if !targetLabels[m[2]] && !slices.ContainsFunc(names, func(n string) bool { return exported[n][m[2]] }) {
			return nil, errors.New("label_values of " + m[2] + ", a label none of its metrics carries")
		}
		return names, nil
	}
	q := stringRe.ReplaceAllString(expr, `""`)
	var errs []error
	var names []string
	labelsOf := map[string]bool{}
	for l := range targetLabels {
		labelsOf[l] = true
	}
	for _, m := range selectorRe.FindAllStringSubmatch(q, -1) {
		labels, ok := exported[m[1]]
		if !ok {
			continue // reported below
		}
		for _, matcher := range strings.Split(m[2], ",") {
			if strings.TrimSpace(matcher) == "" {
				continue
			}
			mm := matcherRe.FindStringSubmatch(matcher)
			if mm == nil {
				errs = append(errs, errors.New("unreadable matcher "+matcher+" of "+m[1]))
				continue
			}
			if !labels[mm[1]] && !targetLabels[mm[1]] {
				errs = append(errs, errors.New(m[1]+" has no label "+mm[1]))
			}
		}
	}
	var groupings []string
	for _, g := range groupingRe.FindAllStringSubmatch(q, -1) {
		for _, l := range strings.Split(g[2], ",") {
			if l = strings.TrimSpace(l); l != "" {
				groupings = append(groupings, l)
			}
		}
	}
	q = groupingRe.ReplaceAllString(q, " ")
	q = bracketRe.ReplaceAllString(q, " ")
	q = numberRe.ReplaceAllString(q, " ")
	for _, tok := range tokenRe.FindAllString(q, -1) {
		if strings.HasSuffix(tok, "(") {
			if fn := strings.TrimSpace(strings.TrimSuffix(tok, "(")); !promqlFunctions[fn] && !promqlKeywords[fn] {
				errs = append(errs, errors.New("unknown function "+fn))
			}
			continue
		}
		if promqlKeywords[tok] {
			continue
		}
		labels, ok := exported[tok]
		if !ok {
			errs = append(errs, errors.New("the server exports no metric "+tok))
			continue
		}
		names = append(names, tok)
		for l := range labels {
			labelsOf[l] = true
		}
	}
	for _, l := range groupings {
		if !labelsOf[l] {
			errs = append(errs, errors.New("grouping by "+l+", a label none of its metrics carries"))
		}
	}
	if len(names) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("names no metric"))
	}
	return names, errors.Join(errs...)
}

func TestCheckQuery(t *testing.T) {
	exported := map[string]map[string]bool{
		"roster_members":       {"scope": true},
		"roster_http_x_bucket": {"route": true, "le": true},
	}
	for expr, want := range map[string]string{
		`max by (scope) (roster_members{job=~"$job",scope="a"})`:                                      "",
		`histogram_quantile(0.99, sum by (route, le) (rate(roster_http_x_bucket[$__rate_interval])))`: "",
		`roster_membrs`:                                    "exports no metric roster_membrs",
		`sum by (state) (roster_members)`:                  "grouping by state",
		`roster_members{group="g"}`:                        "has no label group",
		`rated(roster_members[5m])`:                        "unknown function rated",
		`1 + 2e3`:                                          "names no metric",
		`label_values(roster_members{job=~"$job"}, scope)`: "",
		`label_values(roster_members, job)`:                "",
		`label_values(roster_members, state)`:              "a label none of its metrics carries",
	} {
		_, err := checkQuery(expr, exported)
		if want == "" {
			require.NoError(t, err, expr)
		} else {
			require.ErrorContains(t, err, want, expr)
		}
	}
}

// dashboard is the part of a Grafana dashboard the check reads.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos *struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

// TestGrafanaDashboard parses deploy/grafana/roster.json and checks that
// every panel's queries, and the template variables', name only metrics
// (and labels) a server exports, and that the dashboard has a panel for
// each family an operator needs.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "roster.json"))
	require.NoError(t, err)
	var d dashboard // the fields read here; the rest are Grafana's
	require.NoError(t, json.Unmarshal(raw, &d))
	require.NotEmpty(t, d.UID)
	require.NotEmpty(t, d.Title)
	exported := exportedMetrics(t)

	used := map[string]bool{}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		expr, _ := q["query"].(string)
		names, err := checkQuery(expr, exported)
		require.NoError(t, err, "variable %s: %s", v.Name, expr)
		for _, n := range names {
			used[n] = true
		}
	}
	var all []panel
	for _, p := range d.Panels {
		all = append(all, p)
		all = append(all, p.Panels...)
	}
	ids := map[int]bool{}
	graphs := 0
	for _, p := range all {
		require.False(t, ids[p.ID], "panel id %d repeated", p.ID)
		ids[p.ID] = true
		require.NotNil(t, p.GridPos, p.Title)
		require.LessOrEqual(t, p.GridPos.X+p.GridPos.W, 24, "%s: Grafana's grid is 24 wide", p.Title)
		require.Positive(t, p.GridPos.W*p.GridPos.H, p.Title)
		if p.Type == "row" {
			continue
		}
		graphs++
		require.NotNil(t, p.Datasource, p.Title)
		require.Equal(t, "${datasource}", p.Datasource.UID, p.Title)
		require.NotEmpty(t, p.Targets, p.Title)
		for _, tg := range p.Targets {
			names, err := checkQuery(tg.Expr, exported)
			require.NoError(t, err, "panel %q: %s", p.Title, tg.Expr)
			for _, n := range names {
				used[n] = true
			}
		}
	}
	require.Greater(t, graphs, 20)
	for _, need := range []string{
		"roster_members", "roster_groups", "roster_peers", "roster_ready",
		"roster_gossip_messages_sent_total", "roster_gossip_messages_received_total",
		"roster_gossip_message_bytes_sent_total", "roster_gossip_message_bytes_received_total",
		"roster_anti_entropy_rounds_total", "roster_anti_entropy_repair_bytes_sent_total",
		"roster_gossip_held_deltas", "roster_gossip_overflow_total", "roster_gossip_unvouched_deltas_total", "roster_gossip_packets_dropped_total",
		"roster_watchers", "roster_watch_backlog_events", "roster_watch_backlog_max_events",
		"roster_storage_fsync_duration_seconds_bucket", "roster_pebble_disk_bytes", "roster_pebble_read_amplification",
		"roster_pebble_compaction_debt_bytes", "roster_pebble_block_cache_hits_total",
		"roster_http_request_duration_seconds_count", "roster_http_request_duration_seconds_bucket",
	} {
		require.True(t, used[need], "no panel shows %s", need)
	}
}

// promConfig is the part of a Prometheus configuration the check reads.
type promConfig struct {
	ScrapeConfigs []struct {
		JobName         string `yaml:"job_name"`
		MetricsPath     string `yaml:"metrics_path"`
		Scheme          string `yaml:"scheme"`
		BearerTokenFile string `yaml:"bearer_token_file"`
		KubernetesSD    []struct {
			Role string `yaml:"role"`
		} `yaml:"kubernetes_sd_configs"`
		RelabelConfigs []struct {
			SourceLabels []string `yaml:"source_labels"`
			Regex        string   `yaml:"regex"`
			Action       string   `yaml:"action"`
			TargetLabel  string   `yaml:"target_label"`
		} `yaml:"relabel_configs"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// TestPrometheusScrapeExample checks deploy/prometheus/prometheus.yml
// against the server and the Kubernetes manifest: every job scrapes
// /metrics with the API token from a file, and the Kubernetes job keeps
// exactly the manifest's pods (label app=roster) on the container port
// named http, the one roster serve's --http-addr listens on.
func TestPrometheusScrapeExample(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "deploy", "prometheus", "prometheus.yml"))
	require.NoError(t, err)
	var cfg promConfig
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	require.NoError(t, dec.Decode(&cfg))
	require.ErrorIs(t, dec.Decode(&cfg), io.EOF, "one document")
	require.NotEmpty(t, cfg.ScrapeConfigs)

	podLabels, httpPort, httpAddrPort := manifestFacts(t)
	k8sJobs := 0
	for _, sc := range cfg.ScrapeConfigs {
		require.Equal(t, "/metrics", sc.MetricsPath, sc.JobName)
		require.NotEmpty(t, sc.BearerTokenFile, "%s: /metrics needs the API token", sc.JobName)
		require.Contains(t, []string{"", "http", "https"}, sc.Scheme, sc.JobName)
		if len(sc.KubernetesSD) == 0 {
			require.NotEmpty(t, sc.StaticConfigs, sc.JobName)
			continue
		}
		k8sJobs++
		require.Equal(t, "pod", sc.KubernetesSD[0].Role)
		keeps := map[string]string{}
		for _, rc := range sc.RelabelConfigs {
			if rc.Action == "keep" {
				require.Len(t, rc.SourceLabels, 1)
				keeps[rc.SourceLabels[0]] = rc.Regex
			}
		}
		require.Equal(t, podLabels["app"], keeps["__meta_kubernetes_pod_label_app"], "keeps the manifest's pods")
		require.Equal(t, httpPort, keeps["__meta_kubernetes_pod_container_port_name"], "keeps the API port")
	}
	require.Equal(t, 1, k8sJobs)
	require.NotEmpty(t, httpAddrPort)

	// The token the job sends is the one /metrics wants.
	reg, err := registry.Open(context.Background(), func() registry.Config {
		c := registry.LocalConfig("prom")
		c.Scopes = []string{"default"}
		c.DataDir = t.TempDir()
		return c
	}())
	require.NoError(t, err)
	defer func() { require.NoError(t, reg.Close(context.Background())) }()
	scfg := DefaultConfig()
	scfg.Token = "from-the-secret"
	s, err := New(reg, scfg)
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Shutdown(context.Background())) }()
	for token, want := range map[string]int{"": http.StatusUnauthorized, "from-the-secret": http.StatusOK} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, cfg.ScrapeConfigs[0].MetricsPath, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token) // as bearer_token_file sends it
		}
		s.Handler().ServeHTTP(rec, req)
		require.Equal(t, want, rec.Code)
	}
}

// manifestFacts reads deploy/kubernetes/roster.yaml: the StatefulSet's pod
// labels, the name of its container port that --http-addr listens on, and
// that port.
func manifestFacts(t *testing.T) (labels map[string]string, portName, port string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "deploy", "kubernetes", "roster.yaml"))
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var obj struct {
			Kind string `yaml:"kind"`
			Spec struct {
				Template struct {
					Metadata struct {
						Labels map[string]string `yaml:"labels"`
					} `yaml:"metadata"`
					Spec struct {
						Containers []struct {
							Args  []string `yaml:"args"`
							Ports []struct {
								Name          string `yaml:"name"`
								ContainerPort int    `yaml:"containerPort"`
							} `yaml:"ports"`
						} `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if obj.Kind != "StatefulSet" {
			continue
		}
		labels = obj.Spec.Template.Metadata.Labels
		c := obj.Spec.Template.Spec.Containers[0]
		i := slices.IndexFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--http-addr=") })
		require.GreaterOrEqual(t, i, 0, "the manifest sets --http-addr")
		_, port, _ = strings.Cut(strings.TrimPrefix(c.Args[i], "--http-addr="), ":")
		for _, p := range c.Ports {
			if p.Name != "" && port == strings.TrimSpace(itoa(p.ContainerPort)) {
				portName = p.Name
			}
		}
	}
	require.NotNil(t, labels, "a StatefulSet")
	require.NotEmpty(t, portName, "a container port named for --http-addr's")
	return labels, portName, port
}

func itoa(v int) string { return formatUint(uint64(v)) }
