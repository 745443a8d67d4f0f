package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// k8sObject is the part of a Kubernetes object the check reads.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Type       string            `yaml:"type"`       // Secret
	StringData map[string]string `yaml:"stringData"` // Secret
	Data       map[string]string `yaml:"data"`       // Secret
	Spec       struct {
		ClusterIP                string            `yaml:"clusterIP"`
		PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
		Selector                 map[string]any    `yaml:"selector"`
		Ports                    []k8sPort         `yaml:"ports"`
		ServiceName              string            `yaml:"serviceName"`
		Replicas                 int               `yaml:"replicas"`
		Template                 k8sPodTemplate    `yaml:"template"`
		VolumeClaimTemplates     []k8sVolumeClaims `yaml:"volumeClaimTemplates"`
	} `yaml:"spec"`
}

type k8sPort struct {
	Name          string `yaml:"name"`
	Port          int    `yaml:"port"`
	TargetPort    string `yaml:"targetPort"`
	ContainerPort int    `yaml:"containerPort"`
	Protocol      string `yaml:"protocol"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sEnv struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom struct {
		FieldRef struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
		SecretKeyRef struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
	} `yaml:"valueFrom"`
}

type k8sPodTemplate struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		SecurityContext struct {
			RunAsNonRoot *bool `yaml:"runAsNonRoot"`
			RunAsUser    int   `yaml:"runAsUser"`
			RunAsGroup   int   `yaml:"runAsGroup"`
			FSGroup      int   `yaml:"fsGroup"`
		} `yaml:"securityContext"`
		Containers []struct {
			Image           string    `yaml:"image"`
			ImagePullPolicy string    `yaml:"imagePullPolicy"`
			Command         []string  `yaml:"command"`
			Args            []string  `yaml:"args"`
			Env             []k8sEnv  `yaml:"env"`
			Ports           []k8sPort `yaml:"ports"`
			ReadinessProbe  k8sProbe  `yaml:"readinessProbe"`
			LivenessProbe   k8sProbe  `yaml:"livenessProbe"`
			SecurityContext struct {
				AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
				ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
			} `yaml:"securityContext"`
			VolumeMounts []struct {
				Name      string `yaml:"name"`
				MountPath string `yaml:"mountPath"`
			} `yaml:"volumeMounts"`
		} `yaml:"containers"`
	} `yaml:"spec"`
}

type k8sVolumeClaims struct {
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
}

// TestKubernetesManifest checks the Kubernetes example as it would be
// applied, every object of it: the Secret the pods read (its keys, and
// values roster serve accepts), a headless Service for DNS seeds, a
// client Service whose target port is the container's, and a StatefulSet
// whose container arguments parse with roster serve's own flags (after
// Kubernetes' $(VAR) expansion) and whose environment variables are flags
// too, ports and probes on the real endpoints, the advertised HTTP
// address on the container's port, the data directory on the claimed
// volume, and the image's non-root user.
func TestKubernetesManifest(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/kubernetes/roster.yaml")
	require.NoError(t, err)
	objs := map[string]k8sObject{}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		require.NotEmpty(t, o.APIVersion, "%s %s has an apiVersion", o.Kind, o.Metadata.Name)
		key := o.Kind + "/" + o.Metadata.Name
		require.NotContains(t, objs, key, "defined once")
		objs[key] = o
	}
	var keys []string
	for k := range objs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	require.Equal(t, []string{"Secret/roster", "Service/roster", "Service/roster-gossip", "StatefulSet/roster"}, keys)

	gossip := objs["Service/roster-gossip"]
	require.Equal(t, "None", gossip.Spec.ClusterIP)
	require.True(t, gossip.Spec.PublishNotReadyAddresses)
	protos := map[string]bool{}
	for _, p := range gossip.Spec.Ports {
		require.Equal(t, 7946, p.Port)
		protos[p.Protocol] = true
	}
	require.Equal(t, map[string]bool{"UDP": true, "TCP": true}, protos, "memberlist needs UDP and TCP")

	sts := objs["StatefulSet/roster"]
	require.Equal(t, "roster-gossip", sts.Spec.ServiceName)
	require.GreaterOrEqual(t, sts.Spec.Replicas, 3)
	for _, svc := range []k8sObject{gossip, objs["Service/roster"]} {
		require.NotEmpty(t, svc.Spec.Selector)
		for k, v := range svc.Spec.Selector {
			require.Equal(t, v, sts.Spec.Template.Metadata.Labels[k], "Service %s selects the pods", svc.Metadata.Name)
		}
	}
	require.Len(t, sts.Spec.Template.Spec.Containers, 1)
	c := sts.Spec.Template.Spec.Containers[0]
	require.Equal(t, []string{"roster"}, c.Command, "on the image's PATH")
	require.Equal(t, "roster:dev", c.Image, "the image this repository builds (Dockerfile, cmd/roster-image)")
	require.Equal(t, "IfNotPresent", c.ImagePullPolicy, "a locally built image is not pulled")
	require.Equal(t, "serve", c.Args[0])

	// The Secret defines every key the pods read, with values serve takes.
	secret := objs["Secret/roster"]
	require.Equal(t, "Opaque", secret.Type)
	require.Empty(t, secret.Data, "placeholders in stringData, readable")
	envs := map[string]k8sEnv{}
	fieldRefs := map[string]string{}
	for _, e := range c.Env {
		envs[e.Name] = e
		if ref := e.ValueFrom.SecretKeyRef; ref.Name != "" {
			require.Equal(t, "roster", ref.Name, "%s reads the manifest's Secret", e.Name)
			require.Contains(t, secret.StringData, ref.Key, "%s reads a key the Secret defines", e.Name)
		}
		if f := e.ValueFrom.FieldRef.FieldPath; f != "" {
			fieldRefs[e.Name] = f
		}
	}
	require.Equal(t, "api-token", envs["ROSTER_API_TOKEN"].ValueFrom.SecretKeyRef.Key)
	require.Equal(t, "gossip-key", envs["ROSTER_GOSSIP_KEY"].ValueFrom.SecretKeyRef.Key)
	keys2, err := parseKeys("gossip-key", secret.StringData["gossip-key"])
	require.NoError(t, err, "the placeholder gossip key is a key serve accepts")
	require.Equal(t, [][]byte{[]byte(exampleGossipKey)}, keys2, "and the one serve warns about")
	require.Equal(t, exampleAPIToken, secret.StringData["api-token"], "the placeholder token is the one serve warns about")
	require.Len(t, secret.StringData, 2, "no key nobody reads")

	// Kubernetes expands $(VAR) in args from the container's environment.
	podEnv := map[string]string{"metadata.name": "roster-0", "status.podIP": "10.1.2.3", "metadata.namespace": "prod"}
	var pairs []string
	for name, field := range fieldRefs {
		v, ok := podEnv[field]
		require.True(t, ok, "%s: field %s is one the test knows", name, field)
		pairs = append(pairs, "$("+name+")", v)
	}
	expand := strings.NewReplacer(pairs...)
	args := make([]string, len(c.Args)-1)
	for i, a := range c.Args[1:] {
		args[i] = expand.Replace(a)
		require.NotContains(t, args[i], "$(", "%q uses only variables the container defines", a)
	}

	var o serveOptions
	fs := serveFlags(&o, "host", io.Discard)
	require.NoError(t, fs.Parse(args), "manifest args parse with roster serve's flags")
	require.Empty(t, fs.Args())
	require.Equal(t, "/data", o.dataDir)
	require.Equal(t, []string{"roster-gossip:7946"}, []string(o.join))
	require.Equal(t, "lan", o.profile)
	require.Equal(t, "roster-0", o.name)
	require.Equal(t, "roster.prod", o.cluster)
	require.True(t, o.forward, "requests for another pod's members and sessions are forwarded")
	for _, e := range c.Env {
		if name, ok := strings.CutPrefix(e.Name, "ROSTER_"); ok {
			flagName := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
			require.NotNil(t, fs.Lookup(flagName), "%s is not a roster serve flag", e.Name)
		}
	}
	_, httpPort, err := splitHostPort("--http-addr", o.httpAddr)
	require.NoError(t, err)
	_, gossipPort, err := splitHostPort("--gossip-addr", o.gossipAddr)
	require.NoError(t, err)
	advHost, advPort, err := splitHostPort("--advertise-addr", o.advertiseAddr)
	require.NoError(t, err)
	require.Equal(t, "10.1.2.3", advHost)
	require.Equal(t, gossipPort, advPort)
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	require.Equal(t, httpPort, ports["http"])
	require.Equal(t, gossipPort, ports["gossip-udp"])
	require.Equal(t, gossipPort, ports["gossip-tcp"])
	adv, err := advertiseHTTP(o, &net.TCPAddr{IP: net.IPv4zero, Port: httpPort}, "http")
	require.NoError(t, err)
	require.Equal(t, "http://10.1.2.3:8080", adv, "other pods forward to the pod's IP and HTTP port")

	client := objs["Service/roster"]
	require.Len(t, client.Spec.Ports, 1)
	require.Contains(t, ports, client.Spec.Ports[0].TargetPort, "the client Service targets a container port")
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	require.Contains(t, ports, c.ReadinessProbe.HTTPGet.Port)
	require.Contains(t, ports, c.LivenessProbe.HTTPGet.Port)
	require.Len(t, c.VolumeMounts, 1)
	require.Equal(t, o.dataDir, c.VolumeMounts[0].MountPath)
	require.Len(t, sts.Spec.VolumeClaimTemplates, 1)
	require.Equal(t, c.VolumeMounts[0].Name, sts.Spec.VolumeClaimTemplates[0].Metadata.Name)

	// The image's user (cmd/roster-image, Dockerfile), non-root, owning
	// the volume; nothing written outside it.
	sc := sts.Spec.Template.Spec.SecurityContext
	require.NotNil(t, sc.RunAsNonRoot)
	require.True(t, *sc.RunAsNonRoot)
	require.Equal(t, 65532, sc.RunAsUser)
	require.Equal(t, 65532, sc.RunAsGroup)
	require.Equal(t, 65532, sc.FSGroup)
	require.NotNil(t, c.SecurityContext.AllowPrivilegeEscalation)
	require.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	require.True(t, c.SecurityContext.ReadOnlyRootFilesystem)
}

// TestExampleSecretsWarn: a node running with the manifest's placeholder
// secrets says so.
func TestExampleSecretsWarn(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	o := serveOptions{name: "n", profile: "local", scopes: "default", gossipAddr: "127.0.0.1:0", dataDir: t.TempDir(),
		sync: "always", gossipKey: "RVhBTVBMRS1PTkxZLXJvc3Rlci1nb3NzaXAta2V5ISE="}
	cfg, err := registryConfig(o, logger)
	require.NoError(t, err)
	warnExampleSecrets(logger, exampleAPIToken, cfg)
	require.Contains(t, logs.String(), "API token is the public example")
	require.Contains(t, logs.String(), "gossip key is the public example")

	logs.Reset()
	o.gossipKey = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	cfg, err = registryConfig(o, logger)
	require.NoError(t, err)
	warnExampleSecrets(logger, "a real token", cfg)
	require.Empty(t, logs.String())
}
