// RunnelLog
