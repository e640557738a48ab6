"""Reports built from run directories alone: Markdown tables, PNG plots, the paper's claim, the simulator's fit."""
