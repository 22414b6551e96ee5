"""mentee's memory of taught answers (Chroma); built in the memory issue."""
