// STUB: replaced by the API module.
#include "daemon.h"
