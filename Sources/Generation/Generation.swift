// Generation module
