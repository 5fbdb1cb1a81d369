#include "cprivsep_common.h"
