// RunnelNode
