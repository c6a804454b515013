// GPT2 module
