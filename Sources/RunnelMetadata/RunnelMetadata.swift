// RunnelMetadata
