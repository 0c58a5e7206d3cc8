"""A run: the plan of cells (`plan`), its folder on disk and resuming it (`folders`), handing cells to an
executor and writing what comes back (`runner`), and the progress lines (`progress`)."""
