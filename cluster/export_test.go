package cluster

// PublishFunc publishes a group's message (data) with its message id, expecting the stream's
// last revision to be base.
type PublishFunc = publishFunc

// WrapPublish injects faults into n's publish path. Call it before the node's first Apply.
func WrapPublish(n *Node, wrap func(next PublishFunc) PublishFunc) { n.publish = wrap(n.publish) }

// Queued is how many Applies wait for n's writer to take them.
func Queued(n *Node) int { return len(n.writes) }
