// Optimization module
