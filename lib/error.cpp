#include "grtmp/error.h"

G_DEFINE_QUARK(grtmp-error-quark, grtmp_error)
