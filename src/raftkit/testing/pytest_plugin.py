"""pytest fixtures for the raftkit simulator."""
