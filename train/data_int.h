/*
 * train's private seam between the data sets' front door (data.c:
 * bv_data_load, the IDX files) and the CIFAR reader (cifar.c).
 */
#ifndef BV_DATA_INT_H
#define BV_DATA_INT_H

#include "train.h"

/* Load CIFAR-100 (hundred != 0) or CIFAR-10 from d->dir into d, whose name
 * and dir bv_data_load has set; sets d->n_classes. BV_E* with a message
 * naming the file. */
int data_load_cifar(bv_data *d, int hundred);

#endif
