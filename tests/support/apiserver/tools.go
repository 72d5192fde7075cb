//go:build tools

// Package kubeworld pins the upstream modules the test world is built and read from: the
// kube-apiserver command, and the CRD files shipped in the Gateway API and Inference Extension
// modules (read from the module cache, never copied).
package kubeworld

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "sigs.k8s.io/gateway-api/apis/v1"
	_ "sigs.k8s.io/gateway-api-inference-extension/api/v1"
)
