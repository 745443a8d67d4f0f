package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// TestKubernetesUsesTheImage: the Kubernetes example runs the image this
// command builds by default (roster:dev), its `roster` command is found
// on the image's PATH, and it runs as the image's user.
func TestKubernetesUsesTheImage(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/kubernetes/roster.yaml")
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var sts struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Template struct {
				Spec struct {
					SecurityContext struct {
						RunAsUser int `yaml:"runAsUser"`
					} `yaml:"securityContext"`
					Containers []struct {
						Image   string   `yaml:"image"`
						Command []string `yaml:"command"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	for sts.Kind != "StatefulSet" {
		err := dec.Decode(&sts)
		require.False(t, errors.Is(err, io.EOF), "a StatefulSet in the manifest")
		require.NoError(t, err)
	}
	pod := sts.Spec.Template.Spec
	require.Equal(t, "roster:"+defaultVersion, pod.Containers[0].Image, "roster-image's default tag")
	var pathDirs []string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathDirs = strings.Split(v, ":")
		}
	}
	require.True(t, slices.Contains(pathDirs, path.Dir(binaryPath)), "%q on the image's PATH %v", pod.Containers[0].Command[0], pathDirs)
	require.Equal(t, path.Base(binaryPath), pod.Containers[0].Command[0])
	require.Equal(t, uid, pod.SecurityContext.RunAsUser)
}
