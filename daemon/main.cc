// STUB: replaced by the API module.
int main() { return 0; }
