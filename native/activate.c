/* Placeholder: the socket-activation launcher (process backend) fills this in. */
int main(void) { return 0; }
