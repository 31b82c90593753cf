"""One module per page of the window: the five audit steps, History and Ask both."""
