#include "api/cli.h"

int main(int argc, char** argv) { return baton::api::RunCli(argc, argv); }
