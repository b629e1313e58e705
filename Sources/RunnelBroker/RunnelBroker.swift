// RunnelBroker
