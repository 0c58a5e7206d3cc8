"""What a cell measures with: the synced phase clock (`clock`), statistics of samples (`stats`), losses and
metrics (`metrics`), the float64 NumPy reference for parity (`reference`) and the machine and software
(`envinfo`). Framework-free: each framework's compile counter is read in backends/compile_clock.py."""
