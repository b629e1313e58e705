// RunnelController
