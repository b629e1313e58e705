// RunnelNetwork
