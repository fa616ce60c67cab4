"""The kubernetes adapter: the controller side's only kubernetes-client user (leader election)."""
