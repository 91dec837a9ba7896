// Builds the CNI loopback plugin: the node's only network plugin. Pods of the e2e suite use
// hostNetwork; a loopback-only conflist is enough for the kubelet to report the node Ready.
module pullsecret-injector.invalid/tools/cni

go 1.26.8

tool github.com/containernetworking/plugins/plugins/main/loopback

require (
	github.com/containernetworking/cni v1.3.1 // indirect
	github.com/containernetworking/plugins v1.10.0 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/vishvananda/netlink v1.3.1 // indirect
	github.com/vishvananda/netns v0.0.5 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
