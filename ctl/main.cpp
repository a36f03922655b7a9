// reelctl: the command-line client of reeld. Everything lives in the reel_ctl library.
#include "commands.hpp"

int main(int argc, char** argv) { return reel::ctl::reelctl_main(argc, argv); }
