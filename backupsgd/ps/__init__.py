"""Parameter-server modes: ranks 0..k-1 own shards of the parameters, the other ranks compute gradients."""
