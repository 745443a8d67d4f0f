package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// k8sObject is the part of a Kubernetes object the check reads.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
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
	ContainerPort int    `yaml:"containerPort"`
	Protocol      string `yaml:"protocol"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sPodTemplate struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		Containers []struct {
			Command []string `yaml:"command"`
			Args    []string `yaml:"args"`
			Env     []struct {
				Name string `yaml:"name"`
			} `yaml:"env"`
			Ports          []k8sPort `yaml:"ports"`
			ReadinessProbe k8sProbe  `yaml:"readinessProbe"`
			LivenessProbe  k8sProbe  `yaml:"livenessProbe"`
			VolumeMounts   []struct {
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

// TestKubernetesManifest checks the README's Kubernetes example against
// the binary: a headless Service for DNS seeds, a StatefulSet whose
// container arguments parse with roster serve's own flags (and whose
// environment variables are flags too), probes on the real endpoints, and
// the data directory on the claimed volume.
func TestKubernetesManifest(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/kubernetes/roster.yaml")
	require.NoError(t, err)
	objs := map[string]k8sObject{}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var o k8sObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err)
		}
		objs[o.Kind+"/"+o.Metadata.Name] = o
	}

	gossip, ok := objs["Service/roster-gossip"]
	require.True(t, ok, "headless gossip Service")
	require.Equal(t, "None", gossip.Spec.ClusterIP)
	require.True(t, gossip.Spec.PublishNotReadyAddresses)
	protos := map[string]bool{}
	for _, p := range gossip.Spec.Ports {
		require.Equal(t, 7946, p.Port)
		protos[p.Protocol] = true
	}
	require.Equal(t, map[string]bool{"UDP": true, "TCP": true}, protos, "memberlist needs UDP and TCP")

	sts, ok := objs["StatefulSet/roster"]
	require.True(t, ok)
	require.Equal(t, "roster-gossip", sts.Spec.ServiceName)
	require.GreaterOrEqual(t, sts.Spec.Replicas, 3)
	for k, v := range gossip.Spec.Selector {
		require.Equal(t, v, sts.Spec.Template.Metadata.Labels[k], "Service selects the pods")
	}
	require.Len(t, sts.Spec.Template.Spec.Containers, 1)
	c := sts.Spec.Template.Spec.Containers[0]
	require.Equal(t, []string{"roster"}, c.Command)
	require.Equal(t, "serve", c.Args[0])

	var o serveOptions
	fs := serveFlags(&o, "host", io.Discard)
	require.NoError(t, fs.Parse(c.Args[1:]), "manifest args parse with roster serve's flags")
	require.Empty(t, fs.Args())
	require.Equal(t, "/data", o.dataDir)
	require.Equal(t, []string{"roster-gossip:7946"}, []string(o.join))
	require.Equal(t, "lan", o.profile)
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
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	require.Equal(t, httpPort, ports["http"])
	require.Equal(t, gossipPort, ports["gossip-udp"])
	require.Equal(t, gossipPort, ports["gossip-tcp"])
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	require.Len(t, c.VolumeMounts, 1)
	require.Equal(t, o.dataDir, c.VolumeMounts[0].MountPath)
	require.Len(t, sts.Spec.VolumeClaimTemplates, 1)
	require.Equal(t, c.VolumeMounts[0].Name, sts.Spec.VolumeClaimTemplates[0].Metadata.Name)
}
