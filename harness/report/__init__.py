"""Reports from result files only: `render` dispatches to each format (terminal, Markdown, CSV, JSON,
HTML); `summary` folds records into one row per cell configuration; `tables` lays them out as sections;
`format` formats values; `plots` draws the SVG charts; `keras_cost` and `concurrency` are views over
records."""
